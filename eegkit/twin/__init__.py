"""The synthetic twin of ds005589: stimuli, EEG generator and the twin CLIP.

* :mod:`~eegkit.twin.stimuli`: drawn images and their captions;
* :mod:`~eegkit.twin.generator`: :func:`make_twin` writes the dataset's exact file
  layout; :class:`TwinModel` holds its ground truth (for :mod:`eegkit.ceiling`);
* :mod:`~eegkit.twin.twinclip`: a small CLIP pretrained on twin images and captions
  that exclude the experiment's, the default CLIP when no real one is available;
* :mod:`~eegkit.twin.resolve`: :func:`open_dataset`, the real data when given, else
  the twin (written once).

Imports only :mod:`eegkit.data`, :mod:`eegkit.train` and :mod:`eegkit._io`.
"""

from eegkit.twin.generator import GENERATOR_VERSION, PRESETS, TwinModel, TwinPreset, get_preset, load_twin_model, make_twin
from eegkit.twin.resolve import open_dataset, resolve_data_root

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "TwinModel",
    "TwinPreset",
    "get_preset",
    "load_twin_model",
    "make_twin",
    "open_dataset",
    "resolve_data_root",
]
