"""Shared fixtures: small twins written once per test session."""

from __future__ import annotations

import shutil

import pytest

from eegkit.twin.generator import make_twin

SMALL_SUBJECTS = ("sub-02", "sub-03")
#: Heads and encoder size of the small Task 2B models of the tests.
RETRIEVAL_SUBJECTS = ("sub-02", "sub-03", "sub-05")
ENCODER = {"d": 16, "n_layers": 1, "n_heads": 2}


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
    from eegkit.data.loading import load_dataset

    return load_dataset(tiny_root)


@pytest.fixture(scope="session")
def twin_clip_tiny(tiny_data, tmp_path_factory):
    """The test-sized twin CLIP (about 20 s), pretrained without the tiny twin's captions.

    Kept in ``$EEGKIT_CACHE`` when set (``make test`` sets it), so the nbmake run of
    notebook 04 finds it; otherwise in a temporary folder.
    """
    import os

    from eegkit.retrieval.clip import load_clip
    from eegkit.twin.twinclip import ensure_twin_clip

    cache = os.environ.get("EEGKIT_CACHE") or tmp_path_factory.mktemp("cache")
    path = ensure_twin_clip(tiny_data.captions.caption, preset="tiny", cache_dir=cache)
    return load_clip(path)


@pytest.fixture(scope="session")
def random_clip(tmp_path_factory):
    """A small random CLIP, loaded through load_clip like any checkpoint."""
    import torch

    from eegkit.retrieval.clip import load_clip
    from eegkit.twin.twinclip import TWIN_CLIP_PRESETS, build_twin_clip

    torch.manual_seed(0)
    model, processor = build_twin_clip(TWIN_CLIP_PRESETS["tiny"])
    folder = tmp_path_factory.mktemp("clip") / "random-clip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return load_clip(folder)


@pytest.fixture(scope="session")
def small_data(small_root):
    """The small twin loaded with its complete subjects."""
    from eegkit.data.loading import load_dataset

    return load_dataset(small_root, subjects="complete")


def _fit_rows(monkeypatch, normaliser_class) -> list:
    """Rows every ``normaliser_class.fit`` call of the test is given, in call order."""
    import numpy as np

    seen = []
    original = normaliser_class.fit.__func__

    def spy(cls, data, rows, *args, **kwargs):
        seen.append(np.sort(np.asarray(rows, dtype=np.int64)))
        return original(cls, data, rows, *args, **kwargs)

    monkeypatch.setattr(normaliser_class, "fit", classmethod(spy))
    return seen


@pytest.fixture
def normalizer_rows(monkeypatch):
    """Rows every ``ChannelNormalizer.fit`` call of the test is given, in call order."""
    from eegkit.data.torchdata import ChannelNormalizer

    return _fit_rows(monkeypatch, ChannelNormalizer)


@pytest.fixture
def recording_normalizer_rows(monkeypatch):
    """Rows every ``RecordingNormalizer.fit`` call of the test is given, in call order."""
    from eegkit.data.torchdata import RecordingNormalizer

    return _fit_rows(monkeypatch, RecordingNormalizer)


#: Validation losses that :func:`scripted_validation` reports, epoch by epoch: the
#: best is epoch 2, and the last epochs are clearly worse.
SCRIPTED_VAL_LOSSES = (1.0, 0.4, 0.8, 1.5)


@pytest.fixture
def scripted_validation(monkeypatch):
    """Make ``fit`` see :data:`SCRIPTED_VAL_LOSSES` and keep each epoch's weights.

    Returns the list of weight snapshots, one per validation pass, so a test can
    check which epoch's weights a pipeline returned.
    """
    import copy

    from eegkit import train

    snapshots = []

    def scripted(model, objective, loader, device, amp=False, with_extra=False):
        snapshots.append(copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}))
        result = (SCRIPTED_VAL_LOSSES[len(snapshots) - 1], 0.0)
        return (*result, {}) if with_extra else result

    monkeypatch.setattr(train, "evaluate_loss", scripted)
    return snapshots


def same_weights(model, snapshot) -> bool:
    """True when ``model``'s state equals ``snapshot`` exactly (every tensor)."""
    import torch

    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    return all(torch.equal(state[k].detach().cpu(), snapshot[k]) for k in state)


#: Columns of ``EEGData.trials`` that describe a trial's stimulus (its labels).
STIMULUS_COLUMNS = ("image_name", "category", "category_id", "caption_id", "caption", "image_id", "image_path")


def corrupt_test_split(data, split, seed: int = 0):
    """A copy of ``data`` whose test trials have other EEG and other labels.

    Each test trial gets the sign-flipped EEG of a test trial drawn at random plus
    noise, and the stimulus (category, caption, image) of its neighbour among the test
    trials; the training and validation trials are untouched. A choice made on the
    training and validation trials alone is the same on this copy; one that reads the
    test split can change.

    Parameters
    ----------
    data : EEGData
    split : Split
    seed : int, default=0

    Returns
    -------
    corrupted : EEGData
        The runs that hold a test trial are copied into memory (the others stay mapped).
    """
    import dataclasses

    import numpy as np

    rng = np.random.default_rng(seed)
    test = np.asarray(split.test, dtype=np.int64)
    trials = data.trials.copy()
    run_index, trial = trials["run_index"].to_numpy()[test], trials["trial"].to_numpy()[test]
    runs = list(data.runs)
    for run in np.unique(run_index):
        runs[run] = np.array(runs[run])  # an in-memory copy: the twin's files stay as they are
    X = data.get_trials(test)
    X = -X[rng.permutation(len(test))] + rng.normal(scale=float(X.std()), size=X.shape).astype(X.dtype)
    for run, t, x in zip(run_index, trial, X):
        runs[run][t] = x
    # the stimuli of the test trials, shifted by one among them: the test bank (its
    # set of captions) stays the same, the pairing of trials and captions does not
    order = np.roll(np.arange(len(test)), 1)
    for column in STIMULUS_COLUMNS:
        values = trials[column].to_numpy().copy()
        values[test] = values[test][order]
        trials[column] = values
    return dataclasses.replace(data, runs=runs, trials=trials)
