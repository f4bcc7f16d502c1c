"""The synthetic twin: a deterministic generator of ds005589's exact file layout.

The real data cannot be downloaded here, so :func:`make_twin` writes the same files
the published dataset has (run ``.npy`` arrays, label-list ``.json``, ``_image.csv``,
``captions.txt``, images), and eegkit's real loader reads them. The EEG is the sum
that :mod:`eegkit.twin.model` describes: category and image responses, and the
variability between subjects, between sessions and within a session.

Every source of variability is a field of :class:`TwinPreset` with its reason; the
defaults (generator version 4) are calibrated on the ``full`` preset against what
models score on a held-out session of the real ds005589
(``benchmarks/twin_calibration.py``, docs/twin-calibration.md). As in ds005589, a
subject sees each image once and the subjects share the image pool.

:class:`TwinModel` holds this ground truth so that a Bayes-optimal ceiling can be
computed: :meth:`TwinModel.evoked` is the noise-free mean of a trial and
:meth:`TwinModel.noise` draws noise-only trials. :mod:`eegkit.ceiling` computes it.

The generator is three modules, re-exported here: :mod:`eegkit.twin.preset` (the
settings and the version), :mod:`eegkit.twin.model` (:class:`TwinModel`, the
generative model) and :mod:`eegkit.twin.writer` (:func:`make_twin`, the files).
"""

from eegkit.twin.model import (
    FRONTAL_BLINK_CHANNELS,
    MUSCLE_CHANNEL_PREFIXES,
    PEAKS,
    TwinModel,
)
from eegkit.twin.preset import (
    FIELDS_BEFORE_ADDED,
    GENERATOR_VERSION,
    PRESETS,
    TwinPreset,
    get_preset,
    written_preset_fields,
)
from eegkit.twin.writer import image_name, load_twin_model, make_twin

__all__ = [
    "FIELDS_BEFORE_ADDED",
    "FRONTAL_BLINK_CHANNELS",
    "GENERATOR_VERSION",
    "MUSCLE_CHANNEL_PREFIXES",
    "PEAKS",
    "PRESETS",
    "TwinModel",
    "TwinPreset",
    "get_preset",
    "image_name",
    "load_twin_model",
    "make_twin",
    "written_preset_fields",
]
