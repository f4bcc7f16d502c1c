"""PyTorch view of a split: per-channel normalisation and a ``Dataset`` of trials."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from eegkit.data import EEGData


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
    def fit(cls, data: EEGData, rows: Sequence[int], chunk: int = 1024) -> ChannelNormalizer:
        """Estimate each channel's mean and std over the trials ``rows`` and time.

        Reads ``chunk`` trials at a time, so memory stays small on the full data.

        Parameters
        ----------
        data : EEGData
        rows : sequence of int
            Row positions of the training trials. Never pass validation or test rows:
            their statistics would leak into training.
        chunk : int, default=1024
        """
        rows = np.asarray(rows)
        if len(rows) == 0:
            raise ValueError("cannot fit a normaliser on zero trials")
        total = np.zeros(data.n_chans)
        total_sq = np.zeros(data.n_chans)
        for start in range(0, len(rows), chunk):
            X = data.get_trials(np.sort(rows[start : start + chunk])).astype(np.float64)
            total += X.sum(axis=(0, 2))
            total_sq += (X**2).sum(axis=(0, 2))
        count = len(rows) * data.n_times
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        return cls(mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Z-score ``X`` of shape (..., n_chans, n_times) channel by channel."""
        return (X - self.mean[:, None]) / self.std[:, None]


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
    normalizer : ChannelNormalizer, optional
        Fitted on the training split (:meth:`ChannelNormalizer.fit`).
    """

    def __init__(self, data: EEGData, rows: Sequence[int], normalizer: ChannelNormalizer | None = None):
        self.data = data
        self.rows = np.asarray(rows, dtype=np.int64)
        self.normalizer = normalizer
        table = data.trials
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
        """Read a whole batch in one pass over the memory-mapped runs."""
        rows = self.rows[indices]
        X = self.data.get_trials(rows)
        if self.normalizer is not None:
            X = self.normalizer.transform(X)
        X = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        return [
            {"X": X[i], "row": torch.tensor(rows[i], dtype=torch.int64),
             **{name: labels[index] for name, labels in self._labels.items()}}
            for i, index in enumerate(indices)
        ]
