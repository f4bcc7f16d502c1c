"""Where the data comes from: the real dataset when one is given, else the synthetic twin.

:func:`open_dataset` is what a notebook's first cell calls. It sits in the twin
stage because it may write the twin; :mod:`eegkit.data` itself never does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from eegkit._io import default_cache_dir
from eegkit.data.loading import TWIN_MANIFEST, EEGData, load_dataset
from eegkit.twin.preset import GENERATOR_VERSION, get_preset, written_preset_fields
from eegkit.twin.writer import make_twin


def resolve_data_root(
    data_dir: str | os.PathLike | None = None,
    *,
    twin_preset: str = "default",
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Where the data is: ``data_dir``, else ``$EEGKIT_DATA``, else the synthetic twin.

    The twin is written once (deterministically from ``twin_preset`` and ``seed``)
    into ``cache_dir`` (default ``$EEGKIT_CACHE`` or ``~/.cache/eegkit``) and reused.

    Parameters
    ----------
    data_dir : path-like, optional
        The real dataset root; an empty string counts as not given.
    twin_preset : {"tiny", "default", "full"}, default="default"
    seed : int, default=0
    cache_dir : path-like, optional

    Returns
    -------
    root : Path
    """
    chosen = data_dir or os.environ.get("EEGKIT_DATA")
    if chosen:
        return Path(chosen).expanduser().resolve()  # notebooks run in another folder
    root = Path(cache_dir or default_cache_dir()) / f"twin-{twin_preset}-seed{seed}"
    manifest = root / TWIN_MANIFEST
    if manifest.is_file():
        written = json.loads(manifest.read_text())
        version = written.get("generator_version")
        # Settings compared as the manifest stores them (JSON: tuples are lists); a
        # missing field that FIELDS_BEFORE_ADDED does not know is a change.
        settings = json.loads(json.dumps(dataclasses.asdict(get_preset(twin_preset))))
        fields = written_preset_fields(written)
        changed = sorted(k for k in settings.keys() | fields.keys() if fields.get(k) != settings.get(k))
        if version == GENERATOR_VERSION and not changed:
            return root
        warnings.warn(
            f"{root} was written by twin generator version {version}, not {GENERATOR_VERSION}; writing it again"
            if version != GENERATOR_VERSION else
            f"{root} was written with other generator settings ({', '.join(changed)}); writing it again",
            stacklevel=2,
        )
    elif root.exists():
        warnings.warn(f"{root} holds an incomplete twin; writing it again", stacklevel=2)
    make_twin(root, preset=twin_preset, seed=seed, overwrite=True)
    return root


def open_dataset(
    data_dir: str | os.PathLike | None = None,
    *,
    twin_preset: str = "default",
    seed: int = 0,
    subjects: Sequence[str] | str | None = "handout",
    **load_kwargs,
) -> EEGData:
    """What a notebook's first cell needs: :func:`resolve_data_root`, then :func:`load_dataset`.

    Parameters
    ----------
    data_dir : path-like, optional
        The real data; empty or None uses ``$EEGKIT_DATA``, else the synthetic twin.
    twin_preset, seed
        The twin to write (once) when there is no real data.
    subjects
        See :func:`load_dataset`.
    **load_kwargs
        Other arguments of :func:`load_dataset`.
    """
    root = resolve_data_root(data_dir, twin_preset=twin_preset, seed=seed)
    return load_dataset(root, subjects=subjects, **load_kwargs)
