"""Euclidean alignment: whiten each subject's electrodes with its own mean covariance.

He and Wu (2019) align EEG from different subjects by ``R^{-1/2} X``, with ``R`` the
mean spatial covariance of the subject's trials: after it, every subject's trials
have the identity as mean covariance, so a decoder shared by subjects sees the
same second-order statistics from each. Here ``R`` comes from each subject's
*training* trials only, so nothing of the validation or test trials enters it.
"""

from __future__ import annotations

import numpy as np

from eegkit.data.torchdata import EEGTrialDataset


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
