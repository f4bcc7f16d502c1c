"""Data augmentation of EEG training batches, by name.

Three transforms known to help decoders of real EEG, each applied to a random half
of the trials of a training batch (never to validation or test trials):

* ``"time_shift"``: shift the trial by up to ``max_shift_seconds`` either way (the
  samples shifted out wrap round); evoked responses vary in latency from trial to
  trial and from subject to subject, and this teaches the decoder to tolerate it;
* ``"channels_dropout"``: braindecode's :class:`~braindecode.augmentation.ChannelsDropout`,
  a flat signal on each electrode with probability 0.1; real recordings lose
  electrodes to bad contact, differently in each session;
* ``"time_mask"``: braindecode's :class:`~braindecode.augmentation.SmoothTimeMask`, a
  smoothly zeroed 50 ms stretch of every electrode (occasional muscle and movement
  artefacts).

:func:`make_augmentation` builds them; the random state depends on ``(seed, epoch)``
only, so a run resumed from a checkpoint draws the same augmentations as one that
was never interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from braindecode.augmentation import ChannelsDropout, Compose, SmoothTimeMask, Transform

from eegkit._checks import check_option
#: Names :func:`make_augmentation` accepts.
AUGMENTATIONS = ("time_shift", "channels_dropout", "time_mask")


def time_shift(X: torch.Tensor, y: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll each trial by its own number of samples.

    Parameters
    ----------
    X : Tensor, shape (batch, n_chans, n_times)
    y : Tensor, shape (batch,)
        Returned unchanged.
    shifts : LongTensor, shape (batch,)
        Samples to shift each trial by (positive: later).
    """
    n_times = X.shape[-1]
    index = (torch.arange(n_times, device=X.device)[None, :] - shifts[:, None].to(X.device)) % n_times
    return torch.gather(X, -1, index[:, None, :].expand_as(X)), y


class TimeShift(Transform):
    """Shift each selected trial by a whole number of samples in ``[-max_shift, max_shift]``.

    Parameters
    ----------
    probability : float
        Share of the trials shifted.
    max_shift : int
        Largest shift, in samples.
    random_state : int or numpy.random.RandomState, optional
    """

    operation = staticmethod(time_shift)

    def __init__(self, probability: float, max_shift: int, random_state=None):
        super().__init__(probability=probability, random_state=random_state)
        self.max_shift = int(max_shift)

    def get_augmentation_params(self, *batch):
        shifts = self.rng.randint(-self.max_shift, self.max_shift + 1, size=batch[0].shape[0])
        return {"shifts": torch.as_tensor(shifts, dtype=torch.int64)}


def make_augmentation(names: Sequence[str], sfreq: float, seed: int = 0, epoch: int = 0,
                      probability: float = 0.5, max_shift_seconds: float = 0.025) -> Transform:
    """The named transforms, applied one after the other.

    Parameters
    ----------
    names : sequence of str
        Any of :data:`AUGMENTATIONS`; empty gives the identity.
    sfreq : float
        Sampling rate of the trials, in Hz.
    seed, epoch : int
        Seed the random state with ``(seed, epoch)``.
    probability : float, default=0.5
        Share of the trials each transform changes.
    max_shift_seconds : float, default=0.025
        Largest time shift, in s.

    Returns
    -------
    transform : braindecode.augmentation.Compose
        ``X, y = transform(X, y)`` with ``X`` of shape (batch, n_chans, n_times) and
        ``y`` (batch,) returned unchanged.
    """
    for i, name in enumerate(names):
        check_option(f"names[{i}]", name, AUGMENTATIONS)
    rng = np.random.RandomState(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    transforms = {
        "time_shift": lambda: TimeShift(probability, max(1, round(max_shift_seconds * sfreq)), rng),
        "channels_dropout": lambda: ChannelsDropout(probability, p_drop=0.1, random_state=rng),
        "time_mask": lambda: SmoothTimeMask(probability, mask_len_samples=max(1, round(0.05 * sfreq)),
                                            random_state=rng),
    }
    return Compose([transforms[name]() for name in names])
