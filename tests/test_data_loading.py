import json

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SUBJECTS

from eegkit import CATEGORIES, DEFAULT_CHANNELS, HANDOUT_SUBJECTS, load_dataset
from eegkit.data.channels import channel_positions
from eegkit.data.loading import (
    DatasetError,
    complete_subjects,
    detect_layout,
    image_key,
    scan_runs,
)
from eegkit.twin.generator import make_twin


def test_default_channels_are_122_distinct_10_05_positions():
    assert len(DEFAULT_CHANNELS) == 122 == len(set(DEFAULT_CHANNELS))
    assert channel_positions().shape == (122, 3)


def test_categories_are_the_20_in_alphabetical_order():
    assert len(CATEGORIES) == 20 and list(CATEGORIES) == sorted(CATEGORIES)


@pytest.mark.parametrize(
    "path, key",
    [
        ("C:\\pic_10000_resized\\bird\\004461_resized.jpg", "004461"),
        ("pic/train/2009_000920_resized.JPEG", "2009_000920"),
        ("n02835271_1031.jpg", "n02835271_1031"),
        ("000123", "000123"),
    ],
)
def test_image_key_strips_folders_extension_and_resized(path, key):
    assert image_key(path) == key


def test_tiny_twin_loads_with_the_handout_subjects(tiny_root):
    data = load_dataset(tiny_root)
    assert data.layout == "course"
    assert data.subjects == HANDOUT_SUBJECTS
    assert len(data) == 13 * 5 * 20
    assert data.n_chans == 122 and data.n_times == 125
    assert data.sfreq == 250.0  # 125 samples over the 0.5 s epoch
    assert data.channel_names == DEFAULT_CHANNELS
    assert data.twin["preset"] == "tiny"
    assert isinstance(data.runs[0], np.memmap)
    # every trial's label (from the JSON) agrees with its caption's category
    assert (data.trials["category_id"] == data.trials["category"].map(CATEGORIES.index)).all()


def test_trial_table_is_in_file_order_and_matches_the_arrays(tiny_root):
    data = load_dataset(tiny_root, subjects=["sub-03"], sessions=[2])
    assert set(data.trials["subject"]) == {"sub-03"} and set(data.trials["session"]) == {"ses-02"}
    npy = tiny_root / "sub-03/ses-02/sub-03_ses-02_task-lowSpeed_run-01_1000Hz.npy"
    raw = np.load(npy)
    np.testing.assert_array_equal(data.get_trials(np.arange(len(data))), raw)
    labels = json.loads(npy.with_name(npy.name.replace(".npy", ".json")).read_text())
    assert data.trials["category_id"].tolist() == labels
    csv = pd.read_csv(tiny_root / "sub-03/ses-02/sub-03_ses-02_task-lowSpeed_run-01_image.csv")
    assert data.trials["image_name"].tolist() == [image_key(p) for p in csv["FilePath"]]


def test_get_trials_across_runs_keeps_the_requested_order(tiny_root):
    data = load_dataset(tiny_root)
    rows = np.array([700, 3, 1299, 3])
    X = data.get_trials(rows)
    for i, row in enumerate(rows):
        r = data.trials.iloc[row]
        np.testing.assert_array_equal(X[i], data.runs[r.run_index][r.trial])


def test_filtering_does_not_open_other_subjects_files(broken_copy):
    # sub-03's files are corrupt, but loading sub-02 alone never reads them
    for npy in broken_copy.glob("sub-03/*/*.npy"):
        npy.write_bytes(b"not an array")
    data = load_dataset(broken_copy, subjects=["sub-02"])
    assert data.subjects == ("sub-02",)
    with pytest.raises(DatasetError, match="sub-03"):
        load_dataset(broken_copy, subjects=list(SMALL_SUBJECTS))


def test_caption_ids_are_shared_by_equal_captions(tiny_root):
    data = load_dataset(tiny_root)
    per_text = data.captions.groupby("caption")["caption_id"].nunique()
    assert (per_text == 1).all()
    assert data.captions["caption_id"].nunique() == data.captions["caption"].nunique()


def test_openneuro_layout_loads_the_same_trials(tmp_path, small_root):
    root = tmp_path / "openneuro"
    make_twin(root, preset="tiny", seed=0, subjects=SMALL_SUBJECTS, layout="openneuro", progress=False)
    assert detect_layout(root) == "openneuro"
    assert any(root.glob("derivatives/preprocessed_data/sub-02/ses-01/*_1000Hz.npy"))
    assert any(root.glob("sub-02/ses-01/*_image.csv"))
    course = load_dataset(small_root, subjects="complete")
    published = load_dataset(root, subjects="complete")
    assert published.layout == "openneuro"
    pd.testing.assert_frame_equal(
        course.trials.drop(columns="image_path"), published.trials.drop(columns="image_path")
    )
    np.testing.assert_array_equal(course.get_trials([0, 150]), published.get_trials([0, 150]))


def test_complete_subjects_are_discovered(broken_copy):
    assert complete_subjects(broken_copy) == SMALL_SUBJECTS
    for path in broken_copy.glob("sub-03/ses-05/*"):
        path.unlink()
    assert complete_subjects(broken_copy) == ("sub-02",)
    assert load_dataset(broken_copy, subjects="complete").subjects == ("sub-02",)


def test_handout_subjects_missing_is_an_error_that_says_what_to_do(small_root):
    with pytest.raises(DatasetError, match="subjects='complete'"):
        load_dataset(small_root)


def test_metadata_dict_json_is_accepted(broken_copy):
    for path in broken_copy.glob("sub-02/*/*_1000Hz.json"):
        labels = json.loads(path.read_text())
        meta = {"labels": labels, "sfreq": 250.0, "channel_names": list(DEFAULT_CHANNELS)}
        path.write_text(json.dumps(meta))
    data = load_dataset(broken_copy, subjects="complete")
    assert data.sfreq == 250.0 and len(data) == 200


def test_scan_runs_lists_without_opening(small_root):
    runs = scan_runs(small_root)
    assert len(runs) == 2 * 5 and runs[["npy", "json", "csv"]].notna().all().all()


def test_a_single_subject_string_is_one_subject(small_root):
    assert load_dataset(small_root, subjects="sub-03").subjects == ("sub-03",)


def test_a_pickled_dataset_carries_file_names_not_the_eeg(tiny_data):
    """Worker processes receive EEGData by pickle: the runs travel as their .npy names
    and are mapped again, so the pickle is small and reads the same trials."""
    import pickle

    blob = pickle.dumps(tiny_data)
    eeg_bytes = sum(run.nbytes for run in tiny_data.runs)
    assert len(blob) < eeg_bytes / 20
    copy = pickle.loads(blob)
    assert all(isinstance(run, np.memmap) for run in copy.runs)
    rows = [0, 7, len(tiny_data) - 1]
    np.testing.assert_array_equal(copy.get_trials(rows), tiny_data.get_trials(rows))
    pd.testing.assert_frame_equal(copy.trials, tiny_data.trials)
