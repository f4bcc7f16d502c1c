"""EEG classifiers: the baselines and the handout's multi-head architecture.

Every model takes ``forward(X, subject=None)`` with ``X`` of shape
``(batch, n_chans, n_times)`` and returns ``(batch, n_outputs)``; baselines ignore
``subject``. :mod:`~eegkit.models.base` holds the shared base class,
:mod:`~eegkit.models.baselines` the baselines and :mod:`~eegkit.models.multihead`
the multi-head model; :func:`make_model` builds any of them by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from eegkit._checks import check_option
from eegkit.data.channels import CATEGORIES
from eegkit.models.base import UNKNOWN_SUBJECT, EEGModel, subject_lookup
from eegkit.models.baselines import BraindecodeModel, WangFC
from eegkit.models.classical import CLASSICAL_MODELS
from eegkit.models.multihead import (
    READOUTS,
    ChannelCNN,
    EEGEncoder,
    ElectrodeTransformer,
    MultiHeadEEGNet,
    SubjectHeads,
    build_encoder,
)

MODEL_NAMES = ("wang_fc", "eegnet", "shallow", "multihead")


def make_model(name: str, n_chans: int, n_times: int, sfreq: float, subjects: Sequence[str] = (),
               n_outputs: int = len(CATEGORIES), **kwargs) -> EEGModel:
    """Build a classifier by name: ``wang_fc``, ``eegnet``, ``shallow`` or ``multihead``."""
    check_option("name", name, MODEL_NAMES)
    if name == "wang_fc":
        return WangFC(n_chans, n_times, sfreq, n_outputs, **kwargs)
    if name in ("eegnet", "shallow"):
        return BraindecodeModel(name, n_chans, n_times, sfreq, n_outputs, **kwargs)
    if not subjects:
        raise ValueError("the multihead model needs subjects= (one head per subject)")
    return MultiHeadEEGNet(n_chans, n_times, sfreq, subjects, n_outputs, **kwargs)


__all__ = [
    "CLASSICAL_MODELS",
    "MODEL_NAMES",
    "READOUTS",
    "UNKNOWN_SUBJECT",
    "BraindecodeModel",
    "ChannelCNN",
    "EEGEncoder",
    "EEGModel",
    "ElectrodeTransformer",
    "MultiHeadEEGNet",
    "SubjectHeads",
    "WangFC",
    "build_encoder",
    "make_model",
    "subject_lookup",
]
