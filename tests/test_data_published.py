"""The published OpenNeuro copy: its real files, and Task 1 from them without captions or images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from published import COMPLETE_SUBJECTS, REAL_RUN_JSON, build_skeleton, published_paths

from eegkit import CATEGORIES, CaptionsRequired, DatasetError, data_banner, load_dataset, require_captions
from eegkit.data.loading import _read_labels_json, complete_subjects, detect_layout, scan_runs
from eegkit.twin import make_twin

FILLED = ("sub-02", "sub-03")


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    return build_skeleton(tmp_path_factory.mktemp("published") / "ds005589", filled=FILLED)


def test_loader_reads_the_real_run_json():
    labels, meta = _read_labels_json(REAL_RUN_JSON)
    assert meta == {}  # the published JSON is a bare list: no channel names, no sampling rate
    assert len(labels) == 100
    assert np.bincount(labels, minlength=len(CATEGORIES)).tolist() == [5] * len(CATEGORIES)


def test_published_tree_is_the_openneuro_layout_with_14_complete_subjects(skeleton):
    assert detect_layout(skeleton) == "openneuro"
    runs = scan_runs(skeleton)
    n_npy = sum(p.endswith("_1000Hz.npy") for p in published_paths())
    assert len(runs) == n_npy == 400
    assert complete_subjects(skeleton) == COMPLETE_SUBJECTS


def test_task1_loads_without_captions_or_images(skeleton):
    data = load_dataset(skeleton, subjects=FILLED)
    assert data.missing == ("captions", "images")
    assert len(data) == 2 * 5 * 4 * 100
    for files in data.run_files:  # every trial's category is its run JSON's label, in order
        rows = data.trials[(data.trials.subject == files.subject) & (data.trials.session == files.session)
                           & (data.trials.run == files.run)]
        assert rows["category_id"].tolist() == json.loads(files.json.read_text())
        assert (rows["category"] == [CATEGORIES[i] for i in rows["category_id"]]).all()
    assert (data.trials["caption"] == "").all() and (data.trials["caption_id"] == -1).all()
    assert data.trials["image_path"].isna().all()
    # image ids index the image table, one row per image name
    assert (data.captions["image_name"].to_numpy()[data.trials["image_id"]] == data.trials["image_name"]).all()
    assert "no captions and no images" in data_banner(data)
    assert "without captions and images" in repr(data)


def test_retrieval_says_what_is_missing_and_where_it_goes(skeleton):
    data = load_dataset(skeleton, subjects=FILLED)
    with pytest.raises(CaptionsRequired, match="captions.txt") as caught:
        require_captions(data, "Notebook 04")
    assert str(skeleton / "captions.txt") in str(caught.value)
    assert "Task 1 (notebooks 01 to 03) runs without them" in str(caught.value)


def test_a_filepath_folder_that_contradicts_the_label_is_an_error(skeleton, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(skeleton / "sub-02" / "ses-01", root / "sub-02" / "ses-01")
    shutil.copytree(skeleton / "derivatives" / "preprocessed_data" / "sub-02" / "ses-01",
                    root / "derivatives" / "preprocessed_data" / "sub-02" / "ses-01")
    csv = root / "sub-02" / "ses-01" / "sub-02_ses-01_task-lowSpeed_run-01_image.csv"
    table = pd.read_csv(csv)
    label = json.loads(csv.parent.parent.parent.joinpath(
        "derivatives", "preprocessed_data", "sub-02", "ses-01", "sub-02_ses-01_task-lowSpeed_run-01_1000Hz.json"
    ).read_text())[3]
    other = CATEGORIES[(label + 1) % len(CATEGORIES)]
    table.loc[3, "FilePath"] = table.loc[3, "FilePath"].replace(f"\\{CATEGORIES[label]}\\", f"\\{other}\\")
    table.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=rf"{csv.name}: trial 3 .* FilePath folder files under {other}"):
        load_dataset(root, subjects="sub-02", sessions=[1])


def test_a_stimulus_list_that_contradicts_the_label_is_an_error(skeleton, tmp_path):
    root = tmp_path / "copy"
    for part in (("sub-02", "ses-01"), ("derivatives", "preprocessed_data", "sub-02", "ses-01")):
        shutil.copytree(skeleton.joinpath(*part), root.joinpath(*part))
    data = load_dataset(root, subjects="sub-02", sessions=[1])
    first = data.trials.iloc[0]
    other = CATEGORIES[(first.category_id + 1) % len(CATEGORIES)]
    (root / "stimuli").mkdir()
    (root / "stimuli" / f"{other}.csv").write_text(f"{first.image_name}.jpg\n")
    with pytest.raises(DatasetError, match=rf"stimuli/{other}.csv files under {other}"):
        load_dataset(root, subjects="sub-02", sessions=[1])
    (root / "stimuli" / f"{other}.csv").write_text("")  # empty lists (as in the skeleton) are skipped
    (root / "stimuli" / f"{first.category}.csv").write_text(f"{first.image_name}.jpg\n")
    assert len(load_dataset(root, subjects="sub-02", sessions=[1])) == len(data)


def test_twin_writes_the_published_form_and_it_loads_the_same_trials(tmp_path, small_root):
    from conftest import SMALL_SUBJECTS

    root = tmp_path / "published-twin"
    make_twin(root, preset="tiny", seed=0, layout="openneuro", captions=False, subjects=SMALL_SUBJECTS,
              progress=False)
    assert not (root / "captions.txt").exists() and not (root / "images").exists()
    bare = load_dataset(root, subjects="complete")
    full = load_dataset(small_root, subjects="complete")
    assert bare.missing == ("captions", "images") and full.missing == ()
    columns = ["subject", "session", "run", "trial", "image_name", "category_id"]
    pd.testing.assert_frame_equal(bare.trials[columns], full.trials[columns])
    np.testing.assert_array_equal(bare.get_trials([0, 5]), full.get_trials([0, 5]))


def test_captions_without_images_load_for_everything_but_image_queries(broken_copy):
    shutil.rmtree(broken_copy / "images")
    data = load_dataset(broken_copy, subjects="complete")
    assert data.missing == ("images",)
    assert (data.trials["caption"] != "").all()
    require_captions(data, images=False)  # captions are there
    with pytest.raises(CaptionsRequired, match="images"):
        require_captions(data)


def test_a_captions_path_given_must_exist(small_root, tmp_path):
    with pytest.raises(DatasetError, match="captions file not found"):
        load_dataset(small_root, subjects="complete", captions_path=tmp_path / "nope.txt")


def test_the_twin_matches_the_published_run_structure():
    """A real run: 100 stimulus events (numbers 1..100, each followed by the response
    screen, 252) and 100 labels, five per category, as every twin preset writes."""
    from eegkit.twin import PRESETS

    events = pd.read_csv(REAL_RUN_JSON.parent / "sub-02_ses-01_task-lowSpeed_run-01_events.tsv", sep="\t")
    stimuli = events[events["eventnumber"] != 252]
    assert stimuli["eventnumber"].tolist() == list(range(1, 101))
    assert (events["eventnumber"].iloc[1::2] == 252).all()
    assert (np.diff(stimuli["onset"]) > 1000).all()  # at least 1 s (1000 samples at 1000 Hz) apart
    labels, _ = _read_labels_json(REAL_RUN_JSON)
    for preset in PRESETS.values():
        if preset.name != "tiny":  # tiny is the downsampled test copy with 20 trials per run
            assert preset.trials_per_category * len(CATEGORIES) == len(labels) == len(stimuli)
