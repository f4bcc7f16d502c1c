"""eegkit: decode what a person sees from EEG (ds005589), in notebooks and reports.

The package is one folder per stage of the pipeline; each imports only the stages
above it in this list (see ``docs/architecture.md``):

``_io`` -> ``data`` -> ``train`` -> ``twin`` -> ``metrics`` -> ``ceiling`` ->
``models`` -> ``classification`` -> ``retrieval`` -> ``report`` -> ``pipeline``.

What a notebook's first cell needs is importable from ``eegkit`` itself.
"""

from eegkit.data import (
    CATEGORIES,
    DEFAULT_CHANNELS,
    HANDOUT_SUBJECTS,
    CaptionsRequired,
    DatasetError,
    EEGData,
    complete_subjects,
    data_banner,
    load_captions,
    load_dataset,
    require_captions,
)
from eegkit.twin import open_dataset, resolve_data_root

__version__ = "0.1.0"

__all__ = [
    "CATEGORIES",
    "DEFAULT_CHANNELS",
    "HANDOUT_SUBJECTS",
    "CaptionsRequired",
    "DatasetError",
    "EEGData",
    "complete_subjects",
    "data_banner",
    "load_captions",
    "load_dataset",
    "open_dataset",
    "require_captions",
    "resolve_data_root",
]
