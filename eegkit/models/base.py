"""The base class every eegkit classifier shares, and the subject-to-head lookup."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eegkit.data.channels import CATEGORIES

UNKNOWN_SUBJECT = -1


class EEGModel(nn.Module):
    """Base class: holds the signal shape every model is built for.

    Parameters
    ----------
    n_chans : int
        Electrodes.
    n_times : int
        Samples per trial.
    sfreq : float
        Sampling rate in Hz.
    n_outputs : int, default=20
        Classes (or embedding size for retrieval heads).
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float, n_outputs: int = len(CATEGORIES)):
        super().__init__()
        for name, value in (("n_chans", n_chans), ("n_times", n_times), ("n_outputs", n_outputs)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value}")
        if sfreq <= 0:
            raise ValueError(f"sfreq must be positive (Hz), got sfreq={sfreq}")
        self.n_chans, self.n_times, self.sfreq, self.n_outputs = int(n_chans), int(n_times), float(sfreq), int(n_outputs)

    def _check_input(self, X: torch.Tensor) -> None:
        if X.ndim != 3 or X.shape[1:] != (self.n_chans, self.n_times):
            raise ValueError(
                f"{type(self).__name__} expects X of shape (batch, {self.n_chans}, "
                f"{self.n_times}), got {tuple(X.shape)}"
            )

    def n_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _pool_factor(sfreq: float, target_sfreq: float) -> int:
    return max(1, int(round(sfreq / target_sfreq)))


def subject_lookup(model_subjects: Sequence[str], data_subjects: Sequence[str]) -> torch.Tensor:
    """Map ``data.subjects`` indices to a model's head indices (-1: no head).

    Returns
    -------
    lookup : LongTensor, shape (len(data_subjects),)
    """
    heads = {s: i for i, s in enumerate(model_subjects)}
    return torch.tensor([heads.get(s, UNKNOWN_SUBJECT) for s in data_subjects], dtype=torch.int64)
