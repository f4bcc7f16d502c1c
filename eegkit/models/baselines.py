"""Baselines: Wang et al.'s fully connected network and braindecode's EEGNet and ShallowConvNet."""

from __future__ import annotations

import torch
from torch import nn

from eegkit._checks import check_option
from eegkit.data.channels import CATEGORIES
from eegkit.models.base import EEGModel, _pool_factor


class WangFC(EEGModel):
    """Fully connected network on the flattened trial, after Wang et al.'s validation model.

    The dataset paper validated ds005589 with a fully connected classifier on
    125-sample epochs (its README's downsampled copy). Its exact layer sizes live in a
    file the published dataset stores as a git-annex pointer, so they could not be
    read here; this model follows the paper's description: the trial is averaged down
    to about 250 Hz, flattened, and passed through one hidden ReLU layer with dropout.

    Parameters
    ----------
    n_chans, n_times, sfreq, n_outputs
        See :class:`EEGModel`.
    hidden : int, default=256
    dropout : float, default=0.5
    target_sfreq : float, default=250.0
        Rate (Hz) the input is averaged down to before flattening.

    References
    ----------
    Xue, S. et al. (2024). A multi-subject and multi-session EEG dataset for modelling
    human visual object recognition. OpenNeuro ds005589.
    """

    def __init__(self, n_chans, n_times, sfreq, n_outputs=len(CATEGORIES), hidden=256,
                 dropout=0.5, target_sfreq=250.0):
        super().__init__(n_chans, n_times, sfreq, n_outputs)
        pool = _pool_factor(sfreq, target_sfreq)
        self.net = nn.Sequential(
            nn.AvgPool1d(pool),
            nn.Flatten(),
            nn.LazyLinear(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )
        with torch.no_grad():  # materialise the lazy layer from the input shape
            self.net(torch.zeros(1, n_chans, n_times))

    def forward(self, X: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(X)
        return self.net(X)


class BraindecodeModel(EEGModel):
    """A braindecode model behind eegkit's ``forward(X, subject=None)``.

    Parameters
    ----------
    name : {"eegnet", "shallow"}
        ``"eegnet"``: EEGNet-4,2 (Lawhern et al., 2018, *J. Neural Eng.* 15:056013);
        ``"shallow"``: ShallowFBCSPNet, the shallow ConvNet of Schirrmeister et al.
        (2017, *Hum. Brain Mapp.* 38:5391). Both from braindecode 0.8.1.
    n_chans, n_times, sfreq, n_outputs
        See :class:`EEGModel`.
    """

    def __init__(self, name: str, n_chans, n_times, sfreq, n_outputs=len(CATEGORIES)):
        super().__init__(n_chans, n_times, sfreq, n_outputs)
        from braindecode.models import EEGNetv4, ShallowFBCSPNet

        classes = {"eegnet": EEGNetv4, "shallow": ShallowFBCSPNet}
        check_option("name", name, classes)
        kwargs = dict(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq)
        if name == "shallow":  # 0.8.1's shallow net ends in log-softmax unless told not to
            kwargs.update(final_conv_length="auto", add_log_softmax=False)
        self.name = name
        self.model = classes[name](**kwargs)

    def forward(self, X: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(X)
        return self.model(X)
