"""eegkit: decode what a person sees from EEG (ds005589), in notebooks and reports."""

from eegkit.channels import CATEGORIES, DEFAULT_CHANNELS, HANDOUT_SUBJECTS
from eegkit.data import (
    DatasetError,
    EEGData,
    complete_subjects,
    data_banner,
    load_captions,
    load_dataset,
    open_dataset,
    resolve_data_root,
)

__version__ = "0.1.0"

__all__ = [
    "CATEGORIES",
    "DEFAULT_CHANNELS",
    "HANDOUT_SUBJECTS",
    "DatasetError",
    "EEGData",
    "complete_subjects",
    "data_banner",
    "load_captions",
    "load_dataset",
    "open_dataset",
    "resolve_data_root",
]
