"""Load ds005589 (handout section 2.7) into one trial table over memory-mapped runs.

Two layouts are recognised from the root folder:

* ``course`` (handout 2.2.3): ``sub-XX/ses-YY/`` holds each run's ``_1000Hz.npy``,
  ``_1000Hz.json`` and ``_image.csv``;
* ``openneuro`` (the published ds005589): the ``.npy`` and ``.json`` live under
  ``derivatives/preprocessed_data/sub-XX/ses-YY/`` and the ``_image.csv`` in the raw
  ``sub-XX/ses-YY/`` folder.

In both, ``captions.txt`` and the image folder (``images/`` or ``All_images/``) sit at
the root. Every problem with the files raises :class:`DatasetError`, naming the file.
Nothing is dropped or reordered: the trial table lists every trial of every selected
run, in file order.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eegkit.data.channels import CATEGORIES, DEFAULT_CHANNELS, HANDOUT_SUBJECTS

#: Epoch window of the published preprocessing (0 to 500 ms after onset). The
#: sampling rate of a run whose JSON carries none is ``n_times / EPOCH_SECONDS``.
EPOCH_SECONDS = 0.5
N_SESSIONS = 5
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGE_FOLDERS = ("images", "All_images")
CAPTION_COLUMNS = ("abstracted", "caption")
TWIN_MANIFEST = "eegkit_twin.json"
CAPTIONS_FILE = "captions.txt"
#: Folder of the published copy with one stimulus list per category.
STIMULI_FOLDER = "stimuli"

_RUN_RE = re.compile(
    r"^(?P<subject>sub-[^_]+)_(?P<session>ses-[^_]+)_task-lowSpeed_"
    r"(?P<run>run-[^_]+)_(?P<kind>1000Hz\.npy|1000Hz\.json|image\.csv)$"
)


class DatasetError(ValueError):
    """A ds005589 file is missing or does not agree with the others.

    The message names the file, what is wrong with it and how to fix it.
    """


class CaptionsRequired(DatasetError):
    """The data has no captions (or no images), and what was asked needs them.

    The published OpenNeuro copy of ds005589 has neither; the course distributes
    ``captions.txt`` and the images separately. See :func:`require_captions`.
    """


@dataclass(frozen=True)
class RunFiles:
    """The three files of one low-speed run."""

    subject: str
    session: str
    run: str
    npy: Path
    json: Path
    csv: Path


@dataclass(frozen=True)
class _MappedRun:
    """A memory-mapped run in a pickle: the ``.npy`` it maps whole (see ``EEGData.__getstate__``)."""

    path: str
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        run = np.load(self.path, mmap_mode="r")
        if run.shape != self.shape:
            raise DatasetError(f"{self.path}: shape {run.shape}, but it was {self.shape} when the "
                               "dataset was sent to this process; the file changed in between")
        return run


class _RunReader:
    """Read whole trials of a run's ``.npy`` with ``os.preadv`` at offsets from its header.

    Indexing the memory map instead leaves every touched page mapped, and mapped
    pages count in the process's resident memory for as long as the map lives: after
    one epoch, the whole data set. Explicit reads copy the bytes out of the kernel's
    page cache, which is shared, reclaimable and not part of the process's memory.

    Parameters
    ----------
    run : numpy.memmap, shape (n_trials, n_chans, n_times)
        A run as ``np.load(path, mmap_mode="r")`` returns it (see :meth:`supports`).
    """

    def __init__(self, run: np.memmap):
        self.path = run.filename
        self.offset = int(run.offset)
        self.dtype = run.dtype
        self.trial_nbytes = int(np.prod(run.shape[1:])) * run.dtype.itemsize
        self.file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed in close)

    @staticmethod
    def supports(run: np.ndarray) -> bool:
        """Whether ``run`` is a whole C-ordered ``.npy`` file mapped by ``np.load``."""
        return (
            isinstance(run, np.memmap)
            and isinstance(run.base, mmap.mmap)  # not a slice of a map: .offset holds
            and run.filename is not None
            and run.flags.c_contiguous
        )

    def prefetch(self, trial: int) -> None:
        """Ask the kernel to start reading trial ``trial`` (``POSIX_FADV_WILLNEED``).

        Hinting every trial of a batch before reading any lets a cold disk serve
        them in parallel; on a warm page cache the hint costs a few microseconds.
        """
        if hasattr(os, "posix_fadvise"):  # not on macOS or Windows: there the hint is skipped
            os.posix_fadvise(self.file.fileno(), self.offset + trial * self.trial_nbytes,
                             self.trial_nbytes, os.POSIX_FADV_WILLNEED)

    def read(self, trial: int, out: np.ndarray) -> None:
        """Read trial ``trial`` (and the ones after it) into ``out``.

        ``out`` is C-contiguous, shape (n_chans, n_times) for one trial or
        (k, n_chans, n_times) for ``k`` consecutive trials; it is cast if its dtype
        differs from the file's.
        """
        target = out if out.dtype == self.dtype else np.empty(out.shape, self.dtype)
        offset = self.offset + trial * self.trial_nbytes
        if hasattr(os, "preadv"):
            got = os.preadv(self.file.fileno(), [target], offset)
        else:  # macOS and Windows have no preadv; a seek and a read do the same here
            self.file.seek(offset)
            got = self.file.readinto(memoryview(target).cast("B"))
        if got != target.nbytes:
            raise DatasetError(
                f"{self.path}: trial {trial} ends past the end of the file ({got} of "
                f"{target.nbytes} bytes read); the file changed after loading, load "
                "the dataset again"
            )
        if target is not out:
            out[...] = target

    def close(self) -> None:
        self.file.close()


def _nonfinite_trials(run: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Trials of ``run`` that hold NaN or Inf, read ``chunk`` trials at a time.

    Reads with :class:`_RunReader` when it can, so checking a run leaves none of its
    pages mapped.
    """
    bad = []
    if not _RunReader.supports(run):
        for start in range(0, run.shape[0], chunk):
            finite = np.isfinite(run[start : start + chunk]).all(axis=(1, 2))
            bad.append(start + np.flatnonzero(~finite))
        return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
    reader = _RunReader(run)
    try:
        buffer = np.empty((min(chunk, run.shape[0]), *run.shape[1:]), dtype=run.dtype)
        for start in range(0, run.shape[0], chunk):
            X = buffer[: min(chunk, run.shape[0] - start)]
            reader.read(start, X)
            if not np.isfinite(X.sum()):  # a finite sum means every value is finite
                bad.append(start + np.flatnonzero(~np.isfinite(X).all(axis=(1, 2))))
    finally:
        reader.close()
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


@dataclass
class EEGData:
    """ds005589 loaded as a trial table over memory-mapped runs.

    Attributes
    ----------
    root : Path
        The dataset root.
    layout : {"course", "openneuro"}
        The file layout found at the root.
    trials : DataFrame
        One row per trial, in file order, with columns ``subject``, ``session``,
        ``run``, ``trial`` (index within the run), ``image_name``, ``category``,
        ``category_id``, ``caption_id``, ``caption``, ``image_id``, ``image_path``,
        ``subject_id`` (index into :attr:`subjects`) and ``run_index`` (index into
        :attr:`runs`).
    captions : DataFrame
        captions.txt as read: ``image_name``, ``category``, ``category_id``,
        ``caption``, ``caption_id``, ``image_path``; the row position is the image id.
    runs : list of ndarray, each shape (n_trials, n_chans, n_times), µV
        The runs' EEG, memory-mapped read-only (``np.load(mmap_mode="r")``). Prefer
        :meth:`get_trials`: it reads the bytes without touching the map, whereas
        indexing a run directly keeps the pages it touched in resident memory.
    run_files : list of RunFiles
        The files behind :attr:`runs`, in the same order.
    channel_names : tuple of str
    sfreq : float
        Sampling rate in Hz.
    subjects : tuple of str
        The loaded subjects; ``trials.subject_id`` indexes this tuple.
    twin : dict or None
        The synthetic twin's manifest (preset, seed) when the root is a twin.
    missing : tuple of str
        Parts of the course's distribution that this copy lacks: ``"captions"``
        (no captions.txt: ``caption`` is empty and ``caption_id`` is -1, categories
        come from the run JSONs) and/or ``"images"`` (no image folder:
        ``image_path`` is None). Task 1 needs neither; see :func:`require_captions`.
    """

    root: Path
    layout: str
    trials: pd.DataFrame
    captions: pd.DataFrame
    runs: list[np.ndarray]
    run_files: list[RunFiles]
    channel_names: tuple[str, ...]
    sfreq: float
    subjects: tuple[str, ...]
    twin: dict | None = field(default=None)
    missing: tuple[str, ...] = ()
    _readers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_readers"] = {}  # open files do not travel to another process
        # A memory-mapped run travels as its file name and is mapped again on arrival,
        # so a worker process receives kilobytes, not a copy of the whole dataset.
        state["runs"] = [_MappedRun(run.filename, run.shape) if _RunReader.supports(run) else run
                         for run in self.runs]
        return state

    def __setstate__(self, state: dict) -> None:
        state["runs"] = [run.load() if isinstance(run, _MappedRun) else run for run in state["runs"]]
        self.__dict__.update(state)

    @property
    def n_chans(self) -> int:
        return len(self.channel_names)

    @property
    def n_times(self) -> int:
        return int(self.runs[0].shape[2])

    @property
    def source(self) -> str:
        """One line saying what data this is: the twin (with preset) or real."""
        if self.twin is not None:
            return (
                f"synthetic twin (preset={self.twin['preset']!r}, "
                f"seed={self.twin['seed']}) at {self.root}"
            )
        return f"ds005589 ({self.layout} layout) at {self.root}"

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        return (f"EEGData({len(self)} trials, {len(self.subjects)} subjects, {self.n_chans} channels x "
                f"{self.n_times} samples at {self.sfreq:g} Hz, {self.layout} layout"
                + (f", without {' and '.join(self.missing)}" if self.missing else "")
                + f", root={str(self.root)!r})")

    @property
    def has_captions(self) -> bool:
        return "captions" not in self.missing

    @property
    def has_images(self) -> bool:
        return "images" not in self.missing

    def get_trials(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Read the EEG of some trials (only those bytes are read).

        Parameters
        ----------
        rows : sequence of int
            Row positions in :attr:`trials`.

        Returns
        -------
        X : ndarray, shape (len(rows), n_chans, n_times), float32, µV

        Notes
        -----
        Each trial is read from its ``.npy`` with ``os.preadv`` (files stay open
        while this object lives), not through the memory map of :attr:`runs`, so
        reading every trial does not grow the process's resident memory by the size
        of the data. All trials are announced to the kernel before the first is
        read, so that a cold disk fetches them in parallel.
        """
        rows = np.asarray(rows, dtype=np.int64)
        run_index = self.trials["run_index"].to_numpy()[rows]
        trial = self.trials["trial"].to_numpy()[rows]
        return self._read_trials(run_index, trial)

    def _read_trials(self, run_index: np.ndarray, trial: np.ndarray) -> np.ndarray:
        """:meth:`get_trials` by run index and trial index within the run."""
        X = np.empty((len(run_index), self.n_chans, self.n_times), dtype=np.float32)
        trials = list(zip(run_index.tolist(), trial.tolist()))
        readers = [self._reader(run) for run, _ in trials]
        if len(trials) > 1:
            for reader, (_, t) in zip(readers, trials):
                if reader is not None:
                    reader.prefetch(t)
        for i, (reader, (run, t)) in enumerate(zip(readers, trials)):
            if reader is None:
                X[i] = self.runs[run][t]
            else:
                reader.read(t, X[i])
        return X

    def _reader(self, run: int) -> _RunReader | None:
        """The open reader of run ``run``; None when the run must be indexed."""
        if run not in self._readers:
            array = self.runs[run]
            readable = _RunReader.supports(array)
            self._readers[run] = _RunReader(array) if readable else None
        return self._readers[run]


def image_key(file_path: str) -> str:
    """The image identifier in a trial's ``FilePath``.

    The published CSVs hold Windows paths to resized copies
    (``C:\\...\\bird\\004461_resized.jpg``); captions.txt names the original
    (``004461.jpg``). The key is the base name without extension and ``_resized``.
    """
    base = re.split(r"[\\/]", str(file_path).strip())[-1]
    stem, ext = os.path.splitext(base)
    if ext.lower() not in IMAGE_EXTENSIONS:
        stem = base
    return re.sub(r"_resized$", "", stem)


def detect_layout(root: str | os.PathLike) -> str:
    """Say which ds005589 layout lives at ``root``.

    Returns
    -------
    layout : {"course", "openneuro"}
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: no such folder. Point EEGKIT_DATA (or data_dir=) at the "
            "ds005589 root, or leave it unset to use the synthetic twin."
        )
    if (root / "derivatives" / "preprocessed_data").is_dir():
        return "openneuro"
    _refuse_a_folder_inside_the_dataset(root)
    if any(root.glob("sub-*/ses-*/*_task-lowSpeed_run-*_1000Hz.npy")):
        return "course"
    raise DatasetError(
        f"{root}: found neither derivatives/preprocessed_data/ (OpenNeuro layout) nor "
        "sub-XX/ses-YY/*_task-lowSpeed_run-ZZ_1000Hz.npy (course layout); is this "
        "the ds005589 root?"
    )


def _refuse_a_folder_inside_the_dataset(root: Path) -> None:
    """Name the dataset root when ``root`` is a folder inside it (a common first mistake)."""
    if root.name == "preprocessed_data" and root.parent.name == "derivatives":
        dataset = root.parent.parent
        raise DatasetError(
            f"{root}: this is the derivatives/preprocessed_data folder of the published "
            f"(OpenNeuro) layout, whose _image.csv files sit in the raw folders beside it. "
            f"Point data_dir (or EEGKIT_DATA) at the dataset root, {dataset}"
        )
    if re.fullmatch(r"sub-\w+", root.name) and any(root.glob("ses-*")):
        raise DatasetError(
            f"{root}: this is one subject's folder. Point data_dir (or EEGKIT_DATA) at the "
            f"dataset root that holds it, {root.parent}, and choose subjects with "
            f"subjects=[{root.name!r}]"
        )
    if re.fullmatch(r"ses-\w+", root.name) and re.fullmatch(r"sub-\w+", root.parent.name):
        raise DatasetError(
            f"{root}: this is one session's folder. Point data_dir (or EEGKIT_DATA) at the "
            f"dataset root, {root.parent.parent}, and choose it with subjects=[{root.parent.name!r}], "
            f"sessions=[{root.name!r}]"
        )


def scan_runs(root: str | os.PathLike, layout: str | None = None) -> pd.DataFrame:
    """List every low-speed run's files without opening any of them.

    Returns
    -------
    runs : DataFrame
        Columns ``subject``, ``session``, ``run``, ``npy``, ``json``, ``csv`` (paths,
        or None where the file is missing), sorted by subject, session and run.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    eeg_dir = root / "derivatives" / "preprocessed_data" if layout == "openneuro" else root
    found: dict[tuple[str, str, str], dict[str, Path]] = {}
    patterns = [(eeg_dir, "1000Hz.npy"), (eeg_dir, "1000Hz.json"), (root, "image.csv")]
    for base, suffix in patterns:
        for path in base.glob(f"sub-*/ses-*/*_task-lowSpeed_run-*_{suffix}"):
            match = _RUN_RE.match(path.name)
            if match is None:
                continue
            key = (match["subject"], match["session"], match["run"])
            found.setdefault(key, {})[match["kind"]] = path
    rows = [
        {
            "subject": s,
            "session": ses,
            "run": r,
            "npy": files.get("1000Hz.npy"),
            "json": files.get("1000Hz.json"),
            "csv": files.get("image.csv"),
        }
        for (s, ses, r), files in sorted(found.items())
    ]
    return pd.DataFrame(rows, columns=["subject", "session", "run", "npy", "json", "csv"])


def complete_subjects(
    root: str | os.PathLike, n_sessions: int = N_SESSIONS
) -> tuple[str, ...]:
    """Subjects with ``n_sessions`` sessions that all have the full number of runs.

    The full number of runs is the largest any session of the dataset has (4 in
    ds005589). Only folder listings are read.
    """
    runs = scan_runs(root)
    if runs.empty:
        return ()
    per_session = runs.groupby(["subject", "session"]).size()
    full = per_session.max()
    complete = per_session[per_session == full].groupby(level="subject").size()
    return tuple(sorted(complete[complete >= n_sessions].index))


def load_captions(
    path: str | os.PathLike, images_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Read captions.txt (tab-separated: ``dataset, category, image_name, abstracted``).

    Parameters
    ----------
    path : path-like
        The captions file. A ``caption`` column is accepted in place of
        ``abstracted``.
    images_dir : path-like, optional
        Folder of the image files. When given, every image must exist there as
        ``.jpg``, ``.jpeg`` or ``.png`` and ``image_path`` is filled in.

    Returns
    -------
    captions : DataFrame
        ``image_name`` (the key, without extension), ``category``, ``category_id``
        (index in :data:`eegkit.data.channels.CATEGORIES`), ``caption``, ``caption_id``
        (equal caption texts share an id) and ``image_path``; in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: captions file not found. ds005589 needs captions.txt at the "
            "dataset root (or pass captions_path=)."
        )
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable tab-separated file ({exc})") from exc
    table.columns = [c.strip().lower() for c in table.columns]
    caption_col = next((c for c in CAPTION_COLUMNS if c in table.columns), None)
    missing = [c for c in ("image_name", "category") if c not in table.columns]
    if caption_col is None:
        missing.append("abstracted (or caption)")
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {missing}; found {list(table.columns)}. "
            "captions.txt is tab-separated with a header row."
        )
    names = table["image_name"].map(image_key)
    duplicated = names[names.duplicated()].unique()
    if len(duplicated):
        raise DatasetError(
            f"{path}: image name(s) {list(duplicated[:5])} appear more than once; "
            "each image must have exactly one caption row"
        )
    category = table["category"].str.strip().str.lower()
    for line, (name, cat, text) in enumerate(
        zip(names, category, table[caption_col].str.strip()), start=2
    ):
        if not cat:
            raise DatasetError(f"{path}, line {line}: caption row of {name} has no category")
        if cat not in CATEGORIES:
            raise DatasetError(
                f"{path}, line {line}: category {cat!r} of {name} is not one of the 20 "
                f"categories {CATEGORIES}"
            )
        if not text:
            raise DatasetError(f"{path}, line {line}: image {name} has an empty caption")
    captions = pd.DataFrame(
        {
            "image_name": names,
            "category": category,
            "category_id": category.map(CATEGORIES.index).astype(np.int64),
            "caption": table[caption_col].str.strip(),
        }
    )
    unique_texts = sorted(captions["caption"].unique())
    caption_ids = {text: i for i, text in enumerate(unique_texts)}
    captions["caption_id"] = captions["caption"].map(caption_ids).astype(np.int64)
    captions["image_path"] = None
    if images_dir is not None:
        captions["image_path"] = _resolve_images(captions["image_name"], Path(images_dir))
    return captions.reset_index(drop=True)


def _resolve_images(names: pd.Series, images_dir: Path) -> list[str]:
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder not found")
    on_disk = {}
    for entry in os.scandir(images_dir):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS:
            on_disk.setdefault(stem, entry.path)
    paths = []
    for name in names:
        if name not in on_disk:
            raise DatasetError(
                f"{images_dir}: no image file for {name} (looked for "
                f"{name}{{{','.join(IMAGE_EXTENSIONS)}}}); copy the image in or pass "
                "check_images=False to load without images"
            )
        paths.append(on_disk[name])
    return paths


def _find_images_dir(root: Path) -> Path | None:
    """The image folder at the root, or None when the copy has none."""
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    return None


def _category_folder(file_path: str) -> str | None:
    """The category named by the folder of a trial's ``FilePath`` (``...\\bird\\x.jpg``), if any."""
    parts = re.split(r"[\\/]", str(file_path).strip())
    folder = parts[-2].strip().lower() if len(parts) > 1 else ""
    return folder if folder in CATEGORIES else None


def _stimulus_lists(root: Path) -> dict[str, str]:
    """Image key -> category from the published ``stimuli/<category>.csv`` lists.

    The published copy has one list per category (500 images each, from ImageNet
    and PASCAL). Every cell of a list that names an image counts, whatever its
    column, so the check does not depend on the lists' exact columns; empty or
    unreadable lists are skipped. Returns {} when there is no ``stimuli/`` folder.
    """
    listed: dict[str, str] = {}
    for category in CATEGORIES:
        path = root / STIMULI_FOLDER / f"{category}.csv"
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            table = pd.read_csv(path, dtype=str, header=None, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        for cell in table.to_numpy().ravel():
            key = image_key(cell)
            if key and cell.strip().lower().endswith(IMAGE_EXTENSIONS):
                listed.setdefault(key, category)
    return listed


def _normalise_session(session: str | int) -> str:
    return f"ses-{int(session):02d}" if isinstance(session, int) else str(session)


def _select_subjects(root: Path, runs: pd.DataFrame, subjects) -> tuple[str, ...]:
    present = set(runs["subject"])
    if isinstance(subjects, str) and subjects == "complete":
        chosen = complete_subjects(root)
        if not chosen:
            raise DatasetError(f"{root}: no subject has all {N_SESSIONS} sessions")
        return chosen
    if isinstance(subjects, str) and subjects != "handout":
        subjects = (subjects,)  # one subject ID, not its characters
    chosen = HANDOUT_SUBJECTS if subjects in (None, "handout") else tuple(subjects)
    missing = [s for s in chosen if s not in present]
    if missing:
        raise DatasetError(
            f"{root}: subject(s) {missing} have no low-speed runs here (found "
            f"{sorted(present)}). Pass subjects='complete' to use the subjects that "
            "have all sessions, or a list of subject IDs."
        )
    return tuple(chosen)


def _warn_incomplete_subjects(root: Path, runs: pd.DataFrame) -> None:
    """Warn (once per call) about chosen subjects that lack some of the 5 sessions.

    They are loaded as they are: a session split then has fewer (or no) test trials
    for them. ``subjects="complete"`` keeps only subjects with every session.
    """
    sessions = runs.groupby("subject")["session"].unique()
    partial = {s: sorted(v) for s, v in sessions.items() if len(v) < N_SESSIONS}
    if partial:
        listed = "; ".join(f"{s} has only {', '.join(v)}" for s, v in partial.items())
        warnings.warn(
            f"{root}: {listed} (of {N_SESSIONS} sessions). These subjects are loaded as they "
            "are; pass subjects='complete' to keep only subjects with every session.",
            stacklevel=3,
        )


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


def _read_image_csv(path: Path) -> tuple[list[str], list[str | None]]:
    """Each trial's image key, and the category its ``FilePath`` folder names (or None)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from exc
    if "FilePath" not in table.columns:
        raise DatasetError(
            f"{path}: no FilePath column (found {list(table.columns)}); the run's "
            "image CSV must name each trial's image in FilePath"
        )
    return [image_key(p) for p in table["FilePath"]], [_category_folder(p) for p in table["FilePath"]]


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
        _check_run(files, X, keys, folders, labels, len(names), by_name, stimuli, check_finite)
        if arrays and X.shape[2] != arrays[0].shape[2]:
            raise DatasetError(
                f"{files.npy}: {X.shape[2]} time points, but {run_files[0].npy.name} "
                f"has {arrays[0].shape[2]}; all runs must share one epoch length"
            )
        run_sfreq = float(meta.get("sfreq") or meta.get("sampling_rate") or 0) or (
            X.shape[2] / EPOCH_SECONDS
        )
        if sfreq is not None and run_sfreq != sfreq:
            raise DatasetError(f"{files.json}: sampling rate {run_sfreq} Hz, not {sfreq} Hz")
        sfreq = run_sfreq
        if by_name is not None:
            info = by_name.loc[keys]
            columns = {name: info[name].to_numpy() for name in
                       ("category", "category_id", "caption_id", "caption", "image_id", "image_path")}
        else:  # no captions: the run JSON's labels; image ids are numbered below
            category_id = np.asarray(labels, dtype=np.int64)
            columns = {"category": np.asarray(CATEGORIES, dtype=object)[category_id],
                       "category_id": category_id, "caption_id": -1, "caption": "", "image_id": -1,
                       "image_path": None}
        tables.append(
            pd.DataFrame(
                {
                    "subject": files.subject,
                    "session": files.session,
                    "run": files.run,
                    "trial": np.arange(X.shape[0]),
                    "image_name": keys,
                    **columns,
                    "run_index": len(arrays),
                }
            )
        )
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


def _images_without_captions(trials: pd.DataFrame, run_files: list[RunFiles],
                             images: Path | None) -> pd.DataFrame:
    """The image table of a copy without captions.txt: one row per image shown, by name.

    Raises :class:`DatasetError` when two runs file the same image under different
    categories.
    """
    pairs = trials.drop_duplicates(["image_name", "category_id"])
    clash = pairs[pairs["image_name"].duplicated(keep=False)]
    if len(clash):
        name = clash["image_name"].iloc[0]
        shown = trials[trials["image_name"] == name].drop_duplicates("category_id")
        where = [f"{run_files[r].json.name} ({c})" for r, c in zip(shown["run_index"], shown["category"])]
        raise DatasetError(
            f"image {name!r} is labelled with different categories in {where}; the label JSONs "
            "disagree (fix them, or add captions.txt to say which is right)"
        )
    table = pairs.sort_values("image_name")[["image_name", "category", "category_id"]].reset_index(drop=True)
    table["caption"] = ""
    table["caption_id"] = -1
    table["image_path"] = None if images is None else _resolve_images(table["image_name"], images)
    return table


def require_captions(data: EEGData, what: str = "caption retrieval", images: bool = True) -> None:
    """Raise :class:`CaptionsRequired` unless ``data`` has captions (and images).

    Notebooks 04 and 05 call it first, so a copy without them stops with a message
    that says what is missing and where it goes.

    Parameters
    ----------
    data : EEGData
    what : str, default="caption retrieval"
        What needs them, for the message.
    images : bool, default=True
        Require the image files too (CLIP image queries).
    """
    needed = [part for part in ("captions", "images") if part in data.missing and (images or part == "captions")]
    if not needed:
        return
    where = {"captions": f"{data.root / CAPTIONS_FILE}",
             "images": f"{data.root / IMAGE_FOLDERS[0]}/ (one file per image_name of captions.txt)"}
    raise CaptionsRequired(
        f"{data.root}: {what} needs the course's {' and '.join(needed)}, which this copy of "
        f"ds005589 lacks (the published OpenNeuro copy has no captions.txt and no images). Put "
        + " and ".join(f"the {part} at {where[part]}" for part in needed)
        + ", or set data_dir to a copy that has them. Task 1 (notebooks 01 to 03) runs without them."
    )


def data_banner(data: EEGData) -> str:
    """One Markdown line saying which data a notebook ran on; twins are flagged as synthetic,
    and a copy without captions or images says what that limits."""
    note = " Every number below comes from synthetic EEG, not from people." if data.twin else ""
    if data.missing:
        note += (f" This copy has no {' and no '.join(data.missing)}: Task 1 runs, caption retrieval "
                 "(notebooks 04 and 05) needs the course's captions.txt and images.")
    return f"**Data: {data.source}.**{note}"
