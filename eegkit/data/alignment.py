"""Euclidean alignment: whiten each subject's electrodes with its own mean covariance.

He and Wu (2019) align EEG from different subjects by ``R^{-1/2} X``, with ``R`` the
mean spatial covariance of the subject's trials: after it, every subject's trials
have the identity as mean covariance, so a decoder shared by subjects sees the
same second-order statistics from each. Here ``R`` comes from each subject's
*training* trials only, so nothing of the validation or test trials enters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eegkit.data.loading import EEGData
from eegkit.data.torchdata import EEGTrialDataset, fitted_slots, recording_slots

#: Shrinkage of each recording's covariance in :class:`RecordingAligner`: light, so
#: that the alignment whitens, yet a flat or dead electrode stays finite.
ALIGNMENT_SHRINKAGE = 0.05


def subject_covariances(dataset: EEGTrialDataset, chunk: int = 128) -> dict[int, np.ndarray]:
    """Mean spatial covariance of each subject's trials.

    Parameters
    ----------
    dataset : EEGTrialDataset
        The training trials (z-scored by its normaliser if it has one).
    chunk : int, default=128
        Trials read at a time.

    Returns
    -------
    covariances : dict of int -> ndarray, shape (n_chans, n_chans)
        Keyed by subject index (``dataset.subject_index``): the mean over trials of
        ``X @ X.T / n_times``, each trial's channels centred on its own time mean.
    """
    subjects = dataset.subject_index
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for start in range(0, len(dataset), chunk):
        indices = list(range(start, min(start + chunk, len(dataset))))
        X = np.stack([item["X"].numpy() for item in dataset.__getitems__(indices)]).astype(np.float64)
        X -= X.mean(axis=2, keepdims=True)
        cov = np.einsum("bct,bdt->bcd", X, X) / X.shape[2]
        for subject in np.unique(subjects[indices]):
            mine = subjects[indices] == subject
            sums[int(subject)] = sums.get(int(subject), 0) + cov[mine].sum(axis=0)
            counts[int(subject)] = counts.get(int(subject), 0) + int(mine.sum())
    return {subject: sums[subject] / counts[subject] for subject in sums}


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


def euclidean_alignment(dataset: EEGTrialDataset, shrinkage: float = 0.1) -> dict[int, np.ndarray]:
    """Each subject's alignment matrix ``R^{-1/2}``, shape (n_chans, n_chans), from ``dataset``'s trials.

    Pass the training trials only; keys are subject indices as in
    :func:`subject_covariances`.
    """
    return {subject: inverse_sqrt(cov, shrinkage).astype(np.float32)
            for subject, cov in subject_covariances(dataset).items()}


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
