"""Dropout that draws its random numbers three at a time: the same layer, cheaper on a CPU.

``torch.nn.Dropout`` draws one random number per element (``bernoulli_``). On a CPU
that dominated the multi-head model's training step: the attention weights alone
are ``batch x heads x 122 x 122`` elements per layer, and dropout was 56 % of a step
(``benchmarks/profile_multihead.py``). Here one 64-bit random word gives three
16-bit lanes, each compared with ``p`` on a 1/65536 grid: the same Bernoulli mask
(``p`` rounded to the grid), with a third of the random draws. On other devices
the native dropout is used.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16
# The three low 16-bit lanes of each non-negative int64 word from ``random_()``: its
# top lane has its sign bit cleared, so it is not uniform and is skipped.
_LANES = slice(0, 3) if sys.byteorder == "little" else slice(1, 4)


def _check_p(p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def effective_p(p: float) -> float:
    """The drop probability actually used: ``p`` rounded to a multiple of 1/65536."""
    return round(p * _LEVELS) / _LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A Boolean mask, each element True (kept) with probability ``1 - effective_p(p)``.

    Parameters
    ----------
    shape : tuple of int
    p : float
        Drop probability, in [0, 1].
    device : torch.device or str, default="cpu"

    Returns
    -------
    keep : Tensor of bool, shape ``shape``
        Drawn from torch's default generator, so ``torch.manual_seed`` fixes it.
    """
    n = math.prod(shape)
    words = torch.empty((n + 2) // 3, dtype=torch.int64, device=device).random_()
    lanes = words.view(torch.int16).view(-1, 4)[:, _LANES].reshape(-1)[:n]
    # int16 lanes are uniform on [-32768, 32767]: the lowest round(p * 65536) values drop.
    return (lanes >= round(p * _LEVELS) - _LEVELS // 2).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with :func:`keep_mask`'s random numbers on a CPU.

    Kept elements are scaled by ``1 / (1 - effective_p(p))``, so the expected output
    is ``x``. Gradients flow through the kept elements only, as for ``F.dropout``.
    """
    _check_p(p)
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or effective_p(p) >= 1:
        return F.dropout(x, p, training)
    scale = 1.0 / (1.0 - effective_p(p))
    return x * keep_mask(x.shape, p, x.device).to(x.dtype).mul_(scale)


class Dropout(nn.Module):
    """:class:`torch.nn.Dropout` computed with :func:`dropout` (no parameters, same ``p``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        _check_p(p)  # at construction, as torch's Dropout does
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
