"""PyTorch view of a split: per-channel normalisation and a ``Dataset`` of trials.

Four normalisations (:data:`NORMALIZATIONS`):

* ``"training"``: :class:`ChannelNormalizer`, one mean and std per channel from the
  training trials, applied to every part;
* ``"recording"``: :class:`RecordingNormalizer`, each recording (one subject's
  session) z-scored channel by channel with the statistics of its own trials in the
  same part of the split. Electrode impedances, offsets, bad channels and the
  subject's noise level change from session to session, and per-recording scaling
  removes them before the model sees the data, as in Défossez et al. (2023), who
  robust-scale each recording, and braindecode's per-recording standardisation. It
  uses a test session's EEG (never its labels), as a decoder that is run on a
  whole recording can;
* ``"recording_evoked"``: the same, after subtracting each recording's mean trial
  (tried for the multi-head model across subjects, not kept);
* ``"aligned"``: :class:`RecordingAligner`, each recording
  whitened with its own trials' mean spatial covariance (Euclidean alignment per
  recording; tried for the multi-head model, not kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from eegkit._checks import check_option
from eegkit.data.loading import EEGData


def _streamed_sums(data: EEGData, rows: np.ndarray, chunk: int,
                   per_sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Float64 sums of ``x`` and ``x**2`` over the sorted trial ``rows``, read ``chunk``
    trials at a time: ``x`` summed over trials and time, shape (n_chans,), or over
    trials only with ``per_sample``, shape (n_chans, n_times); ``x**2`` over trials and
    time, shape (n_chans,)."""
    total = np.zeros((data.n_chans, data.n_times) if per_sample else data.n_chans)
    total_sq = np.zeros(data.n_chans)
    for start in range(0, len(rows), chunk):
        X = data.get_trials(rows[start : start + chunk]).astype(np.float64)
        total += X.sum(axis=0) if per_sample else X.sum(axis=(0, 2))
        np.square(X, out=X)
        total_sq += X.sum(axis=(0, 2))
    return total, total_sq


def _channel_statistics(data: EEGData, rows: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's mean and std (float32, shape (n_chans,), µV; std at least 1e-6) over
    the sorted trial ``rows`` and time, from :func:`_streamed_sums` (see
    :meth:`ChannelNormalizer.fit`)."""
    total, total_sq = _streamed_sums(data, rows, chunk)
    count = len(rows) * data.n_times
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


@dataclass(frozen=True)
class ChannelNormalizer:
    """Per-channel z-scoring with statistics of the training split only.

    Attributes
    ----------
    mean, std : ndarray, shape (n_chans,), µV
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(
        cls, data: EEGData, rows: Sequence[int], chunk: int = 128
    ) -> ChannelNormalizer:
        """Estimate each channel's mean and std over the trials ``rows`` and time.

        Streams the trials in file order, ``chunk`` at a time, into float64 sums of
        ``x`` and ``x**2`` (a float32 value squared is exact in float64): the result
        is the float64 mean and std of the whole set, to float32 precision, and
        memory stays at one chunk, about ``chunk * n_chans * n_times * 12`` bytes
        (94 MB at the default chunk and 122 x 500 trials).

        Parameters
        ----------
        data : EEGData
        rows : sequence of int
            Row positions of the training trials. Never pass validation or test rows:
            their statistics would leak into training.
        chunk : int, default=128
            Trials read at a time.
        """
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            raise ValueError("cannot fit a normaliser on zero trials")
        if chunk < 1:
            raise ValueError(
                f"chunk={chunk}: read at least one trial at a time (e.g. chunk=128)"
            )
        mean, std = _channel_statistics(data, rows, chunk)
        return cls(mean, std)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Z-score ``X`` of shape (..., n_chans, n_times) channel by channel."""
        return (X - self.mean[:, None]) / self.std[:, None]

    def _transform_inplace(self, X: np.ndarray) -> bool:
        """:meth:`transform` in place on float32 ``X``; False, ``X`` untouched, if it cannot.

        The same two float32 operations as :meth:`transform`, so the values are
        bitwise equal, without two batch-sized temporaries. It cannot when ``mean``
        or ``std`` is not float32: :meth:`transform` then computes in float64. NumPy,
        not torch: a torch operation with several intra-op threads stalls for tens
        of milliseconds when the cores are busy.
        """
        if not (self.mean.dtype == self.std.dtype == X.dtype == np.float32):
            return False
        np.subtract(X, self.mean[:, None], out=X)
        np.divide(X, self.std[:, None], out=X)
        return True

    def normalize_batch(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Z-score a batch ``X`` (batch, n_chans, n_times), in place where it can; ``rows`` unused."""
        if self._transform_inplace(X):
            return X
        return np.ascontiguousarray(self.transform(X), dtype=np.float32)


#: Ways to z-score the trials of a split; see the module docstring.
NORMALIZATIONS = ("training", "recording", "recording_evoked", "aligned")


def recording_index(trials) -> np.ndarray:
    """Index of each trial's recording (one subject's session), shape (n_trials,), int64."""
    keys = trials["subject"].astype(str) + "/" + trials["session"].astype(str)
    return pd.factorize(keys, sort=True)[0].astype(np.int64)


def recording_slots(data: EEGData, rows: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group one part's trials by recording, for a normaliser fitted per recording.

    Returns
    -------
    recording : ndarray of int64, shape (n_rows,)
        For every row of ``data.trials``, its recording's slot among ``rows``, or -1
        for rows not in ``rows``.
    groups : list of ndarray of int64
        The sorted rows of each slot.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    of_row = recording_index(data.trials)
    recording = np.full(len(data.trials), -1, dtype=np.int64)
    groups = []
    for slot, rec in enumerate(np.unique(of_row[rows])):
        groups.append(rows[of_row[rows] == rec])
        recording[groups[-1]] = slot
    return recording, groups


def fitted_slots(recording: np.ndarray, rows: np.ndarray, what: str) -> np.ndarray:
    """The slots of ``rows`` (see :func:`recording_slots`); a row outside them is an error."""
    slot = recording[np.asarray(rows)]
    if (slot < 0).any():
        raise ValueError(f"rows {np.asarray(rows)[slot < 0][:5].tolist()} are not in the trials this "
                         f"{what} was fitted on; fit one per part of the split")
    return slot


@dataclass(frozen=True)
class RecordingNormalizer:
    """Per-channel z-scoring of each recording with the statistics of its own trials.

    With ``evoked`` the recording's mean trial (its evoked response to all images) is
    subtracted first and the std is that of what is left: the per-subject
    standardisation of every feature that MVPA decoders (and this project's LDA) apply,
    which removes the subject's and session's own latencies and amplitudes of the
    response common to all categories, keeping how each trial differs from it.

    Attributes
    ----------
    recording : ndarray of int64, shape (n_rows,)
        For every row of ``data.trials``, the row of ``mean`` and ``std`` that
        normalises it, or -1 for rows the normaliser was not fitted on.
    mean, std : ndarray of float32, shape (n_fitted_recordings, n_chans), µV
    evoked : ndarray of float32, shape (n_fitted_recordings, n_chans, n_times), µV, or None
        Each recording's mean trial minus ``mean``, subtracted as well (``fit(...,
        evoked=True)``).
    """

    recording: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    evoked: np.ndarray | None = None

    @classmethod
    def fit(cls, data: EEGData, rows: Sequence[int], chunk: int = 128,
            evoked: bool = False) -> RecordingNormalizer:
        """Each recording's channel mean and std over its trials among ``rows`` and time.

        Parameters
        ----------
        data : EEGData
        rows : sequence of int
            Row positions of one part of a split (e.g. ``split.test``): a recording's
            statistics come from its trials in this part only, so no part's trials
            enter another part's normalisation.
        chunk : int, default=128
            Trials read at a time.
        evoked : bool, default=False
            Also subtract each recording's mean trial; the std is then that of the
            trials minus it.
        """
        recording, groups = recording_slots(data, rows)
        mean = np.zeros((len(groups), data.n_chans), dtype=np.float32)
        std = np.ones((len(groups), data.n_chans), dtype=np.float32)
        mean_trial = (np.zeros((len(groups), data.n_chans, data.n_times), dtype=np.float32)
                      if evoked else None)
        for slot, mine in enumerate(groups):
            if evoked:
                mean[slot], std[slot], mean_trial[slot] = _evoked_statistics(data, mine, chunk)
            else:
                mean[slot], std[slot] = _channel_statistics(data, mine, chunk)
        return cls(recording, mean, std, mean_trial)

    def normalize_batch(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Z-score a float32 batch ``X`` (batch, n_chans, n_times) of the trials at ``rows``, in place."""
        slot = fitted_slots(self.recording, rows, "normaliser")
        X = np.ascontiguousarray(X, dtype=np.float32)
        np.subtract(X, self.mean[slot][:, :, None], out=X)
        if self.evoked is not None:
            np.subtract(X, self.evoked[slot], out=X)
        np.divide(X, self.std[slot][:, :, None], out=X)
        return X


def _evoked_statistics(data: EEGData, rows: np.ndarray,
                       chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel mean (n_chans,), the mean trial minus it (n_chans, n_times) and the
    channel std of the trials minus the mean trial (n_chans,; at least 1e-6), float32
    µV, over the sorted trial ``rows``, from :func:`_streamed_sums`."""
    total, total_sq = _streamed_sums(data, rows, chunk, per_sample=True)
    mean_trial = total / len(rows)
    mean = mean_trial.mean(axis=1)
    # E[(x - m_t)^2] over trials and time = E[x^2] - mean over t of m_t^2.
    var = total_sq / (len(rows) * data.n_times) - (mean_trial**2).mean(axis=1)
    std = np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-6)
    return (mean.astype(np.float32), std.astype(np.float32),
            (mean_trial - mean[:, None]).astype(np.float32))


def inverse_sqrt(covariance: np.ndarray, shrinkage: float = 0.1) -> np.ndarray:
    """``C^{-1/2}`` of a covariance shrunk towards a multiple of the identity.

    Parameters
    ----------
    covariance : ndarray, shape (n_chans, n_chans)
    shrinkage : float, default=0.1
        ``C <- (1 - s) C + s * mean(diag(C)) I``: keeps directions of near-zero
        variance (e.g. a flat electrode) from being blown up.
    """
    n = covariance.shape[0]
    shrunk = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / n * np.eye(n)
    values, vectors = np.linalg.eigh(shrunk)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


#: Shrinkage of each recording's covariance in :class:`RecordingAligner`: light, so
#: that the alignment whitens, yet a flat or dead electrode stays finite.
ALIGNMENT_SHRINKAGE = 0.05


@dataclass(frozen=True)
class RecordingAligner:
    """Euclidean alignment of each recording with its own trials (label-free).

    Each trial's channels are centred on their time mean, then multiplied by
    ``R^{-1/2}``, ``R`` the mean spatial covariance of the centred trials of the
    trial's recording (one subject's session) in the same part of the split, shrunk
    towards the identity (:func:`inverse_sqrt`). After it every recording's trials
    have (nearly) the identity as mean covariance: He and Wu's (2019) alignment for
    transfer across subjects, computed per recording as
    :class:`eegkit.data.RecordingNormalizer` z-scores per recording. Like it, it uses
    a held-out recording's EEG, never its labels.

    Attributes
    ----------
    recording : ndarray of int64, shape (n_rows,)
        For every row of ``data.trials``, the slot of ``matrix`` that aligns it, or -1
        for rows the aligner was not fitted on.
    matrix : ndarray of float32, shape (n_fitted_recordings, n_chans, n_chans)
        ``R^{-1/2}`` of each recording, in 1/µV.
    """

    recording: np.ndarray
    matrix: np.ndarray

    @classmethod
    def fit(cls, data: EEGData, rows: Sequence[int], shrinkage: float = ALIGNMENT_SHRINKAGE,
            chunk: int = 128) -> RecordingAligner:
        """Each recording's ``R^{-1/2}`` from its trials among ``rows`` (one part of a split).

        Parameters
        ----------
        data : EEGData
        rows : sequence of int
            Row positions of one part of a split: no part's trials enter another's matrices.
        shrinkage : float, default=ALIGNMENT_SHRINKAGE
            Of each covariance towards a multiple of the identity (:func:`inverse_sqrt`).
        chunk : int, default=128
            Trials read at a time.
        """
        recording, groups = recording_slots(data, rows)
        matrix = np.empty((len(groups), data.n_chans, data.n_chans), dtype=np.float32)
        for slot, mine in enumerate(groups):
            covariance = np.zeros((data.n_chans, data.n_chans))
            for start in range(0, len(mine), chunk):
                X = data.get_trials(mine[start : start + chunk]).astype(np.float64)
                X -= X.mean(axis=2, keepdims=True)
                covariance += np.einsum("bct,bdt->cd", X, X)
            covariance /= len(mine) * data.n_times
            matrix[slot] = inverse_sqrt(covariance, shrinkage)
        return cls(recording, matrix)

    def normalize_batch(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Align a batch ``X`` (batch, n_chans, n_times) µV of the trials at ``rows``: float32, unitless."""
        slot = fitted_slots(self.recording, rows, "aligner")
        X = np.asarray(X, dtype=np.float32)
        X = X - X.mean(axis=2, keepdims=True)
        return np.ascontiguousarray(np.matmul(self.matrix[slot], X))


class EEGTrialDataset(Dataset):
    """The trials of one split as a torch ``Dataset``.

    Each item is a dict:

    * ``X``: float32 tensor, shape (n_chans, n_times), z-scored if a normaliser is given;
    * ``subject``: int64, index into ``data.subjects`` (selects the subject's head);
    * ``y``: int64, category id (0-19);
    * ``caption_id``, ``image_id``: int64 (equal captions share an id);
    * ``row``: int64, the row in ``data.trials``.

    Parameters
    ----------
    data : EEGData
    rows : sequence of int
        Row positions of the split (e.g. ``split.train``).
    normalizer : ChannelNormalizer, RecordingNormalizer or RecordingAligner, optional
        Fitted on the training split (:meth:`ChannelNormalizer.fit`), or on these
        rows (:meth:`RecordingNormalizer.fit`).
    """

    def __init__(self, data: EEGData, rows: Sequence[int], normalizer: ChannelNormalizer | None = None):
        self.data = data
        self.rows = np.asarray(rows, dtype=np.int64)
        self.normalizer = normalizer
        table = data.trials
        self._run_index = table["run_index"].to_numpy()[self.rows]
        self._trial = table["trial"].to_numpy()[self.rows]
        self._labels = {
            name: torch.as_tensor(table[column].to_numpy()[self.rows], dtype=torch.int64)
            for name, column in (
                ("subject", "subject_id"),
                ("y", "category_id"),
                ("caption_id", "caption_id"),
                ("image_id", "image_id"),
            )
        }

    @property
    def subject_index(self) -> np.ndarray:
        """Subject index of every trial, for :class:`eegkit.train.SubjectBalancedSampler`."""
        return self._labels["subject"].numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Read a whole batch at once: explicit reads, then z-scoring in place.

        The items' tensors are views of one tensor per key, which the loader's
        collate function stacks.
        """
        index = np.asarray(indices, dtype=np.int64)
        X = self.data._read_trials(self._run_index[index], self._trial[index])
        if self.normalizer is not None:
            X = self.normalizer.normalize_batch(X, self.rows[index])
        X = torch.from_numpy(X)
        picked = torch.from_numpy(index)
        columns = {"X": X.unbind(), "row": torch.from_numpy(self.rows[index]).unbind()}
        for name, labels in self._labels.items():
            columns[name] = labels[picked].unbind()
        return [dict(zip(columns, values)) for values in zip(*columns.values())]


@dataclass
class SplitDatasets:
    """The three datasets of a split, z-scored as ``normalization`` says.

    Both Task 1 and Task 2B start from this, so the rule "fit on the training split
    only" (or, per recording, "on the recording's trials in the same part") lives in
    one place.

    Attributes
    ----------
    normalizer : ChannelNormalizer, RecordingNormalizer or RecordingAligner
        The training part's: with ``"training"`` the one normaliser of every part;
        with ``"recording"`` each dataset has its own (``train.normalizer``, ...).
    train, val, test : EEGTrialDataset
    train_subjects : tuple of str
        Subjects with training trials, in ``data.subjects`` order (one head each).
    """

    normalizer: ChannelNormalizer | RecordingNormalizer
    train: EEGTrialDataset
    val: EEGTrialDataset
    test: EEGTrialDataset
    train_subjects: tuple[str, ...]

    @classmethod
    def from_split(cls, data: EEGData, split, normalization: str = "training") -> SplitDatasets:
        """Fit the normaliser(s) and wrap each part of ``split``.

        Parameters
        ----------
        data : EEGData
        split : eegkit.data.splits.Split
        normalization : {"training", "recording", "recording_evoked", "aligned"}, default="training"
            One :class:`ChannelNormalizer` fitted on ``split.train``, or a
            :class:`RecordingNormalizer` (with its ``evoked`` subtraction for
            ``"recording_evoked"``; or a :class:`RecordingAligner`) fitted on each part.
        """
        check_option("normalization", normalization, NORMALIZATIONS)
        parts = {part: getattr(split, part) for part in ("train", "val", "test")}
        if normalization == "training":
            shared = ChannelNormalizer.fit(data, split.train)
            normalizers = dict.fromkeys(parts, shared)
        elif normalization in ("recording", "recording_evoked"):
            evoked = normalization == "recording_evoked"
            normalizers = {part: RecordingNormalizer.fit(data, rows, evoked=evoked)
                           for part, rows in parts.items()}
        else:
            normalizers = {part: RecordingAligner.fit(data, rows) for part, rows in parts.items()}
        present = set(data.trials["subject"].iloc[split.train])
        return cls(
            normalizer=normalizers["train"],
            **{part: EEGTrialDataset(data, rows, normalizers[part]) for part, rows in parts.items()},
            train_subjects=tuple(s for s in data.subjects if s in present),
        )
