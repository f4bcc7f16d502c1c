"""The synthetic twin of ds005589: stimuli, EEG generator and the twin CLIP.

* :mod:`~eegkit.twin.stimuli`: drawn images and their captions;
* :mod:`~eegkit.twin.preset`: :class:`TwinPreset`, the twin's size and every source
  of variability, and the presets;
* :mod:`~eegkit.twin.model`: :class:`TwinModel`, the generative model and ground
  truth (for :mod:`eegkit.ceiling`);
* :mod:`~eegkit.twin.writer`: :func:`make_twin` writes the dataset's exact file
  layout (:mod:`~eegkit.twin.generator` re-exports these three);
* :mod:`~eegkit.twin.twinclip`: a small CLIP pretrained on twin images and captions
  that exclude the experiment's, the default CLIP when no real one is available;
* :mod:`~eegkit.twin.resolve`: :func:`open_dataset`, the real data when given, else
  the twin (written once).

Imports only :mod:`eegkit.data`, :mod:`eegkit.train` and :mod:`eegkit._io`.
"""

from eegkit.twin.model import TwinModel
from eegkit.twin.preset import GENERATOR_VERSION, PRESETS, TwinPreset, get_preset
from eegkit.twin.resolve import open_dataset, resolve_data_root
from eegkit.twin.writer import load_twin_model, make_twin

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
