"""EEGData: the trial table over memory-mapped runs, and the reader of their trials.

:func:`eegkit.data.loading.load_dataset` builds an :class:`EEGData`;
:meth:`EEGData.get_trials` reads trials with ``os.preadv`` (:class:`_RunReader`), so
reading every trial does not keep the runs' pages in the process's resident memory.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eegkit.data.layout import DatasetError, RunFiles

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


def data_banner(data: EEGData) -> str:
    """One Markdown line saying which data a notebook ran on; twins are flagged as synthetic,
    and a copy without captions or images says what that limits."""
    note = " Every number below comes from synthetic EEG, not from people." if data.twin else ""
    if data.missing:
        note += (f" This copy has no {' and no '.join(data.missing)}: Task 1 runs, caption retrieval "
                 "(notebooks 04 and 05) needs the course's captions.txt and images.")
    return f"**Data: {data.source}.**{note}"
