"""The data stage: read ds005589 (or its twin), split it, and serve it to PyTorch.

* :mod:`~eegkit.data.channels`: the 122-channel montage, categories, subjects;
* :mod:`~eegkit.data.loading`: :func:`load_dataset` and its checks of each run, built on
  :mod:`~eegkit.data.layout` (the two file layouts, the list of runs),
  :mod:`~eegkit.data.captions` (captions.txt, images, ``_image.csv``) and
  :mod:`~eegkit.data.eegdata` (:class:`EEGData` and its trial reader);
* :mod:`~eegkit.data.splits`: the session, within-session and cross-subject splits;
* :mod:`~eegkit.data.torchdata`: per-channel normalisation fitted on the training
  split, and the ``Dataset`` of trials;
* :mod:`~eegkit.data.explore`: trial counts, class balance, ERPs and spectra
  (notebook 01).

Nothing here imports another eegkit stage.
"""

from eegkit.data.channels import CATEGORIES, DEFAULT_CHANNELS, HANDOUT_SUBJECTS
from eegkit.data.loading import (
    CaptionsRequired,
    DatasetError,
    EEGData,
    complete_subjects,
    data_banner,
    detect_layout,
    load_captions,
    load_dataset,
    require_captions,
    scan_runs,
)
from eegkit.data.splits import PROTOCOLS, Split, make_split
from eegkit.data.torchdata import (
    NORMALIZATIONS,
    ChannelNormalizer,
    EEGTrialDataset,
    RecordingNormalizer,
    SplitDatasets,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_CHANNELS",
    "HANDOUT_SUBJECTS",
    "NORMALIZATIONS",
    "PROTOCOLS",
    "CaptionsRequired",
    "ChannelNormalizer",
    "DatasetError",
    "EEGData",
    "EEGTrialDataset",
    "RecordingNormalizer",
    "Split",
    "SplitDatasets",
    "complete_subjects",
    "data_banner",
    "detect_layout",
    "load_captions",
    "load_dataset",
    "make_split",
    "require_captions",
    "scan_runs",
]
