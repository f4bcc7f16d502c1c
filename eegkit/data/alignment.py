"""Euclidean alignment: whiten each subject's electrodes with its own mean covariance.

He and Wu (2019) align EEG from different subjects by ``R^{-1/2} X``, with ``R`` the
mean spatial covariance of the subject's trials: after it, every subject's trials
have the identity as mean covariance, so a decoder shared by subjects sees the
same second-order statistics from each. Here ``R`` comes from each subject's
*training* trials only, so nothing of the validation or test trials enters it.
"""

from __future__ import annotations

import numpy as np

from eegkit.data.torchdata import EEGTrialDataset, inverse_sqrt

__all__ = ["euclidean_alignment", "inverse_sqrt", "subject_covariances"]


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


def euclidean_alignment(dataset: EEGTrialDataset, shrinkage: float = 0.1) -> dict[int, np.ndarray]:
    """Each subject's alignment matrix ``R^{-1/2}``, shape (n_chans, n_chans), from ``dataset``'s trials.

    Pass the training trials only; keys are subject indices as in
    :func:`subject_covariances`.
    """
    return {subject: inverse_sqrt(cov, shrinkage).astype(np.float32)
            for subject, cov in subject_covariances(dataset).items()}
