"""Shared fixtures: small twins written once per test session."""

from __future__ import annotations

import shutil

import pytest

from eegkit.synthetic import make_twin

SMALL_SUBJECTS = ("sub-02", "sub-03")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """The ``tiny`` preset (13 subjects, 1,300 trials), course layout."""
    root = tmp_path_factory.mktemp("twin") / "tiny"
    make_twin(root, preset="tiny", seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def small_root(tmp_path_factory):
    """Two subjects of the tiny preset: cheap to copy and break."""
    root = tmp_path_factory.mktemp("twin") / "small"
    make_twin(root, preset="tiny", seed=0, subjects=SMALL_SUBJECTS, progress=False)
    return root


@pytest.fixture
def broken_copy(small_root, tmp_path):
    """A fresh copy of the small twin that a test may damage."""
    root = tmp_path / "copy"
    shutil.copytree(small_root, root)
    return root


@pytest.fixture(scope="session")
def tiny_data(tiny_root):
    from eegkit.data import load_dataset

    return load_dataset(tiny_root)


@pytest.fixture(scope="session")
def twin_clip_tiny(tiny_data, tmp_path_factory):
    """The test-sized twin CLIP (about 20 s), pretrained without the tiny twin's captions.

    Kept in ``$EEGKIT_CACHE`` when set (``make test`` sets it), so the nbmake run of
    notebook 04 finds it; otherwise in a temporary folder.
    """
    import os

    from eegkit.clip import load_clip
    from eegkit.twinclip import ensure_twin_clip

    cache = os.environ.get("EEGKIT_CACHE") or tmp_path_factory.mktemp("cache")
    path = ensure_twin_clip(tiny_data.captions.caption, preset="tiny", cache_dir=cache)
    return load_clip(path)
