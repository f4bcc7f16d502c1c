"""Load ds005589 (handout section 2.7) into one trial table over memory-mapped runs.

:func:`load_dataset` reads every selected run with :func:`_load_run`, which checks
the run's three files against each other and against captions.txt. The other parts
live beside it and are re-exported here, so ``from eegkit.data.loading import ...``
keeps working for every public name:

* :mod:`eegkit.data.layout`: the course and OpenNeuro layouts, :func:`scan_runs`,
  :func:`complete_subjects`, :class:`DatasetError`, :class:`RunFiles`;
* :mod:`eegkit.data.captions`: captions.txt, the image folder, the ``_image.csv``
  files, :func:`require_captions`, :class:`CaptionsRequired`;
* :mod:`eegkit.data.eegdata`: :class:`EEGData`, the trial table and its reader.

Every problem with the files raises :class:`DatasetError`, naming the file and the
fix. Nothing is dropped or reordered: the trial table lists every trial of every
selected run, in file order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eegkit.data.captions import (
    CAPTION_COLUMNS,
    CAPTIONS_FILE,
    IMAGE_EXTENSIONS,
    IMAGE_FOLDERS,
    STIMULI_FOLDER,
    CaptionsRequired,
    _find_images_dir,
    _images_without_captions,
    _read_image_csv,
    _stimulus_lists,
    image_key,
    load_captions,
    require_captions,
)
from eegkit.data.channels import CATEGORIES, DEFAULT_CHANNELS
from eegkit.data.eegdata import EEGData, _nonfinite_trials, data_banner
from eegkit.data.layout import (
    EPOCH_SECONDS,
    N_SESSIONS,
    TWIN_MANIFEST,
    DatasetError,
    RunFiles,
    _normalise_session,
    _select_subjects,
    _warn_incomplete_subjects,
    complete_subjects,
    detect_layout,
    scan_runs,
)

__all__ = [
    "CAPTIONS_FILE",
    "CAPTION_COLUMNS",
    "EPOCH_SECONDS",
    "IMAGE_EXTENSIONS",
    "IMAGE_FOLDERS",
    "N_SESSIONS",
    "STIMULI_FOLDER",
    "TWIN_MANIFEST",
    "CaptionsRequired",
    "DatasetError",
    "EEGData",
    "RunFiles",
    "complete_subjects",
    "data_banner",
    "detect_layout",
    "image_key",
    "load_captions",
    "load_dataset",
    "require_captions",
    "scan_runs",
]


def _read_labels_json(path: Path) -> tuple[list[int] | None, dict]:
    """The run's JSON: a list of category labels (published form) or a metadata dict."""
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    meta = content if isinstance(content, dict) else {}
    labels = content if isinstance(content, list) else meta.get("labels")
    if not isinstance(content, (list, dict)):
        raise DatasetError(f"{path}: expected a JSON list of labels or a metadata object")
    if labels is None:
        return None, meta
    if not isinstance(labels, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(CATEGORIES) for v in labels
    ):
        raise DatasetError(f"{path}: expected labels to be category indices 0..{len(CATEGORIES) - 1}")
    return labels, meta


def _check_run(
    files: RunFiles,
    X: np.ndarray,
    image_keys: list[str],
    folders: list[str | None],
    labels: list[int] | None,
    n_chans: int,
    captions_by_name: pd.DataFrame | None,
    stimuli: dict[str, str],
    check_finite: bool,
) -> None:
    if X.ndim != 3:
        raise DatasetError(
            f"{files.npy}: array has shape {X.shape}; expected 3 axes "
            "(n_trials, n_chans, n_times)"
        )
    if X.shape[1] != n_chans:
        raise DatasetError(
            f"{files.npy}: {X.shape[1]} channels but {files.json.name} (or the default "
            f"montage) names {n_chans}; pass channel_names= matching the recording"
        )
    if len(image_keys) != X.shape[0]:
        raise DatasetError(
            f"{files.csv}: {len(image_keys)} rows but {files.npy.name} has "
            f"{X.shape[0]} trials; re-export the run or leave it out with subjects=/"
            "sessions="
        )
    if labels is not None and len(labels) != X.shape[0]:
        raise DatasetError(
            f"{files.json}: {len(labels)} labels but {files.npy.name} has "
            f"{X.shape[0]} trials"
        )
    if captions_by_name is None and labels is None:
        raise DatasetError(
            f"{files.json}: holds no category labels, and there is no captions.txt to "
            "take the categories from; restore the run's label list or add captions.txt"
        )
    if captions_by_name is not None:
        unknown = [(i, k) for i, k in enumerate(image_keys) if k not in captions_by_name.index]
        if unknown:
            trial, key = unknown[0]
            raise DatasetError(
                f"{files.csv}: trial {trial} shows image {key!r}, which has no caption in "
                f"captions.txt ({len(unknown)} such trial(s))"
            )
    if labels is not None and captions_by_name is not None:
        expected = captions_by_name.loc[image_keys, "category_id"].to_numpy()
        wrong = np.flatnonzero(np.asarray(labels) != expected)
        if len(wrong):
            t = int(wrong[0])
            raise DatasetError(
                f"{files.json}: trial {t} has label {labels[t]} "
                f"({CATEGORIES[labels[t]]}) but captions.txt files image "
                f"{image_keys[t]!r} under {CATEGORIES[expected[t]]} ({expected[t]}); "
                f"{len(wrong)} trial(s) disagree"
            )
    truth = (np.asarray(labels) if labels is not None
             else captions_by_name.loc[image_keys, "category_id"].to_numpy())
    source = files.json.name if labels is not None else "captions.txt"
    for trial, (key, folder) in enumerate(zip(image_keys, folders)):
        listed = stimuli.get(key)
        for named, where in ((folder, "its FilePath folder"), (listed, f"{STIMULI_FOLDER}/{listed}.csv")):
            if named is not None and CATEGORIES.index(named) != truth[trial]:
                raise DatasetError(
                    f"{files.csv}: trial {trial} shows image {key!r}, which {where} files under "
                    f"{named}, but {source} says {CATEGORIES[truth[trial]]}; the run's files "
                    "disagree (re-export the run or leave it out with subjects=/sessions=)"
                )
    if check_finite:
        bad = _nonfinite_trials(X)
        if len(bad):
            raise DatasetError(
                f"{files.npy}: trial(s) {bad[:5].tolist()} contain NaN or Inf"
            )


def load_dataset(
    root: str | os.PathLike,
    *,
    subjects: Sequence[str] | str | None = "handout",
    sessions: Sequence[str | int] | None = None,
    channel_names: Sequence[str] | None = None,
    captions_path: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    check_images: bool = True,
    check_finite: bool = True,
) -> EEGData:
    """Load ds005589's low-speed runs as one trial table (handout 2.7, steps 1-5).

    Parameters
    ----------
    root : path-like
        The dataset root, in the course or the OpenNeuro layout (detected).
    subjects : {"handout", "complete"} or sequence of str, default="handout"
        ``"handout"``: the course's 13 subjects (all must be present);
        ``"complete"``: every subject found with all 5 sessions; or a list of IDs.
        Files of other subjects are not opened.
    sessions : sequence of str or int, optional
        Sessions to load (``"ses-01"`` or ``1``); all by default.
    channel_names : sequence of str, optional
        Electrode names; by default the run JSON's (if it has any) or
        :data:`eegkit.data.channels.DEFAULT_CHANNELS`.
    captions_path : path-like, optional
        Defaults to ``root / "captions.txt"``. Without it (the published OpenNeuro
        copy has none) the data still loads for Task 1: categories come from the
        run JSONs, image names from the ``_image.csv`` files, and the caption
        columns are empty (:attr:`EEGData.missing` says so). A path given here must
        exist.
    images_dir : path-like, optional
        Defaults to ``root / "images"`` or ``root / "All_images"``; when neither
        exists the data loads without image paths. A folder given here must exist.
    check_images : bool, default=True
        Require an image file for every image when there is an image folder;
        False does not look for images at all.
    check_finite : bool, default=True
        Read every run once to reject NaN or Inf.

    Returns
    -------
    data : EEGData

    Raises
    ------
    DatasetError
        On any missing or inconsistent file; the message names it.
    """
    root = Path(root)
    layout = detect_layout(root)
    all_runs = scan_runs(root, layout)
    chosen = _select_subjects(root, all_runs, subjects)
    runs = all_runs[all_runs["subject"].isin(chosen)]
    if sessions is None:
        _warn_incomplete_subjects(root, runs)
    if sessions is not None:
        wanted = [_normalise_session(s) for s in sessions]
        runs = runs[runs["session"].isin(wanted)]
        if runs.empty:
            raise DatasetError(f"{root}: no runs of sessions {wanted} for {chosen}")

    missing = []
    images = None
    if check_images:
        images = Path(images_dir) if images_dir is not None else _find_images_dir(root)
    if images is None:
        missing.append("images")
    captions_file = Path(captions_path) if captions_path is not None else root / CAPTIONS_FILE
    by_name = None
    if captions_path is None and not captions_file.is_file():
        missing.insert(0, "captions")
    else:
        captions = load_captions(captions_file, images)
        by_name = captions.assign(image_id=np.arange(len(captions))).set_index("image_name")
    stimuli = _stimulus_lists(root)

    arrays, run_files, tables = [], [], []
    names: tuple[str, ...] | None = tuple(channel_names) if channel_names else None
    sfreq: float | None = None
    for row in runs.itertuples(index=False):
        files, X, table, names, run_sfreq = _load_run(
            root, layout, row, run_index=len(arrays), channel_names=names,
            captions_by_name=by_name, stimuli=stimuli, check_finite=check_finite)
        if arrays and X.shape[2] != arrays[0].shape[2]:
            raise DatasetError(
                f"{files.npy}: {X.shape[2]} time points, but {run_files[0].npy.name} "
                f"has {arrays[0].shape[2]}; all runs must share one epoch length"
            )
        if sfreq is not None and run_sfreq != sfreq:
            raise DatasetError(f"{files.json}: sampling rate {run_sfreq} Hz, not {sfreq} Hz")
        sfreq = run_sfreq
        tables.append(table)
        arrays.append(X)
        run_files.append(files)

    trials = pd.concat(tables, ignore_index=True)
    if by_name is None:
        captions = _images_without_captions(trials, run_files, images)
        trials["image_id"] = trials["image_name"].map(
            pd.Series(np.arange(len(captions)), index=captions["image_name"])).astype(np.int64)
        trials["image_path"] = trials["image_id"].map(captions["image_path"])
    loaded = tuple(s for s in chosen if s in set(trials["subject"]))
    trials.insert(
        trials.columns.get_loc("run") + 1,
        "subject_id",
        trials["subject"].map({s: i for i, s in enumerate(loaded)}).astype(np.int64),
    )
    twin = None
    if (root / TWIN_MANIFEST).is_file():
        twin = json.loads((root / TWIN_MANIFEST).read_text())
    return EEGData(
        root=root,
        layout=layout,
        trials=trials,
        captions=captions,
        runs=arrays,
        run_files=run_files,
        channel_names=names,
        sfreq=sfreq,
        subjects=loaded,
        twin=twin,
        missing=tuple(missing),
    )


def _load_run(
    root: Path,
    layout: str,
    row,
    *,
    run_index: int,
    channel_names: tuple[str, ...] | None,
    captions_by_name: pd.DataFrame | None,
    stimuli: dict[str, str],
    check_finite: bool,
) -> tuple[RunFiles, np.ndarray, pd.DataFrame, tuple[str, ...], float]:
    """Open one run's three files, check them (:func:`_check_run`) and list its trials.

    Parameters
    ----------
    root : Path
    layout : {"course", "openneuro"}
    row : namedtuple
        One row of :func:`scan_runs` (a file that is missing there is None).
    run_index : int
        The run's position in :attr:`EEGData.runs`, written into its trial rows.
    channel_names : tuple of str or None
        The names the earlier runs (or ``channel_names=``) use; None for the first run.
    captions_by_name : DataFrame or None
        captions.txt indexed by image name, with ``image_id``; None without captions.
    stimuli : dict
        Image key -> category from the published ``stimuli/`` lists.
    check_finite : bool

    Returns
    -------
    files : RunFiles
    X : ndarray, shape (n_trials, n_chans, n_times), µV
        The run, memory-mapped read-only.
    trials : DataFrame
        The run's rows of :attr:`EEGData.trials` (without ``subject_id``).
    channel_names : tuple of str
    sfreq : float
        The run's sampling rate in Hz.
    """
    for kind, suffix in (("npy", "_1000Hz.npy"), ("json", "_1000Hz.json"), ("csv", "_image.csv")):
        if getattr(row, kind) is None:
            # The raw folder holds the _image.csv in the OpenNeuro layout, the
            # derivatives folder the arrays and labels.
            base = root if kind == "csv" or layout == "course" else root / "derivatives" / "preprocessed_data"
            expected = base / row.subject / row.session / f"{row.subject}_{row.session}_task-lowSpeed_{row.run}{suffix}"
            present = ", ".join(p.name for p in (row.npy, row.json, row.csv) if p is not None)
            raise DatasetError(
                f"{expected}: missing ({present} exist for {row.subject} {row.session} "
                f"{row.run}); restore it or leave the run out with subjects=/sessions="
            )
    files = RunFiles(row.subject, row.session, row.run, row.npy, row.json, row.csv)
    labels, meta = _read_labels_json(files.json)
    run_names = meta.get("channel_names") or meta.get("ch_names")
    names = channel_names
    if names is None:
        names = tuple(run_names) if run_names else DEFAULT_CHANNELS
    elif run_names and tuple(run_names) != names:
        raise DatasetError(
            f"{files.json}: channel names differ from the first run's (or from "
            f"channel_names=): {list(run_names)[:4]}... vs {list(names)[:4]}...; all runs "
            "must list the same electrodes in the same order"
        )
    try:
        X = np.load(files.npy, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file
        problem = "empty file, 0 bytes" if files.npy.stat().st_size == 0 else str(exc)
        raise DatasetError(f"{files.npy}: not a readable .npy array ({problem}); restore the file "
                           "(e.g. download it again) or leave the run out with subjects=/sessions=") from exc
    keys, folders = _read_image_csv(files.csv)
    _check_run(files, X, keys, folders, labels, len(names), captions_by_name, stimuli, check_finite)
    sfreq = float(meta.get("sfreq") or meta.get("sampling_rate") or 0) or (X.shape[2] / EPOCH_SECONDS)
    if captions_by_name is not None:
        info = captions_by_name.loc[keys]
        columns = {name: info[name].to_numpy() for name in
                   ("category", "category_id", "caption_id", "caption", "image_id", "image_path")}
    else:  # no captions: the run JSON's labels; load_dataset numbers the image ids
        category_id = np.asarray(labels, dtype=np.int64)
        columns = {"category": np.asarray(CATEGORIES, dtype=object)[category_id],
                   "category_id": category_id, "caption_id": -1, "caption": "", "image_id": -1,
                   "image_path": None}
    trials = pd.DataFrame(
        {
            "subject": files.subject,
            "session": files.session,
            "run": files.run,
            "trial": np.arange(X.shape[0]),
            "image_name": keys,
            **columns,
            "run_index": run_index,
        }
    )
    return files, X, trials, names, sfreq
