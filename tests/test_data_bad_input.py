"""Each kind of bad input raises DatasetError naming the file and the problem."""

import json

import numpy as np
import pandas as pd
import pytest

from eegkit import DatasetError, load_dataset

RUN = "sub-02/ses-01/sub-02_ses-01_task-lowSpeed_run-01"


def load(root, **kwargs):
    return load_dataset(root, subjects="complete", **kwargs)


def test_the_unbroken_copy_loads(broken_copy):
    assert len(load(broken_copy)) == 200


@pytest.mark.parametrize("suffix", ["_1000Hz.npy", "_1000Hz.json", "_image.csv"])
def test_missing_run_file(broken_copy, suffix):
    (broken_copy / f"{RUN}{suffix}").unlink()
    with pytest.raises(DatasetError, match=rf"run-01{suffix}.*missing"):
        load(broken_copy)


def test_missing_captions_file_loads_for_task1_and_says_so(broken_copy):
    (broken_copy / "captions.txt").unlink()
    data = load(broken_copy)
    assert data.missing == ("captions",) and (data.trials["caption_id"] == -1).all()
    with pytest.raises(DatasetError, match=r"nope.txt: captions file not found"):
        load(broken_copy, captions_path=broken_copy / "nope.txt")


def test_empty_npy_names_the_file(broken_copy):
    (broken_copy / f"{RUN}_1000Hz.npy").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"run-01_1000Hz.npy: not a readable .npy array \(empty file, 0 bytes\)"):
        load(broken_copy)


def test_json_label_disagrees_with_caption_category(broken_copy):
    path = broken_copy / f"{RUN}_1000Hz.json"
    labels = json.loads(path.read_text())
    labels[7] = (labels[7] + 1) % 20
    path.write_text(json.dumps(labels))
    with pytest.raises(DatasetError, match=r"run-01_1000Hz.json: trial 7 has label"):
        load(broken_copy)


def test_trial_count_mismatch_between_csv_and_npy(broken_copy):
    path = broken_copy / f"{RUN}_image.csv"
    table = pd.read_csv(path)
    table.iloc[:-1].to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"_image.csv: 19 rows but .*npy has 20 trials"):
        load(broken_copy)


def test_wrong_array_rank(broken_copy):
    path = broken_copy / f"{RUN}_1000Hz.npy"
    np.save(path, np.load(path).reshape(20, -1))
    with pytest.raises(DatasetError, match=r"_1000Hz.npy: array has shape \(20, 15250\)"):
        load(broken_copy)


def test_channel_count_differs_from_the_json(broken_copy):
    path = broken_copy / f"{RUN}_1000Hz.npy"
    np.save(path, np.load(path)[:, :120])
    with pytest.raises(DatasetError, match=r"_1000Hz.npy: 120 channels but .* names 122"):
        load(broken_copy)


def test_time_points_differ_between_runs(broken_copy):
    path = broken_copy / "sub-02/ses-02/sub-02_ses-02_task-lowSpeed_run-01_1000Hz.npy"
    np.save(path, np.load(path)[:, :, :100])
    with pytest.raises(DatasetError, match=r"100 time points"):
        load(broken_copy)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_a_run(broken_copy, bad):
    path = broken_copy / f"{RUN}_1000Hz.npy"
    X = np.load(path)
    X[4, 10, 20] = bad
    np.save(path, X)
    with pytest.raises(DatasetError, match=r"_1000Hz.npy: trial\(s\) \[4\] contain NaN or Inf"):
        load(broken_copy)


def test_image_with_no_caption(broken_copy):
    path = broken_copy / f"{RUN}_image.csv"
    table = pd.read_csv(path)
    table.loc[3, "FilePath"] = "C:\\stimuli\\unknown_resized.jpg"
    table.to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"trial 3 shows image 'unknown', which has no caption"):
        load(broken_copy)


def test_caption_row_with_no_category(broken_copy):
    path = broken_copy / "captions.txt"
    table = pd.read_csv(path, sep="\t", dtype=str)
    table.loc[5, "category"] = ""
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"captions.txt, line 7: caption row of 000006 has no category"):
        load(broken_copy)


def test_missing_image_file(broken_copy):
    (broken_copy / "images" / "000009.jpg").unlink()
    with pytest.raises(DatasetError, match=r"images: no image file for 000009"):
        load(broken_copy)
    assert len(load(broken_copy, check_images=False)) == 200


def test_duplicate_image_names_in_captions(broken_copy):
    path = broken_copy / "captions.txt"
    table = pd.read_csv(path, sep="\t", dtype=str)
    table.loc[2, "image_name"] = table.loc[1, "image_name"]
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"captions.txt: image name\(s\) \['000002'\] appear more than once"):
        load(broken_copy)


def test_malformed_csv(broken_copy):
    path = broken_copy / f"{RUN}_image.csv"
    path.write_text('FilePath\n"C:\\unclosed quote\n')
    with pytest.raises(DatasetError, match=r"_image.csv: malformed CSV"):
        load(broken_copy)


def test_csv_without_filepath_column(broken_copy):
    path = broken_copy / f"{RUN}_image.csv"
    pd.read_csv(path).rename(columns={"FilePath": "path"}).to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"_image.csv: no FilePath column"):
        load(broken_copy)


def test_not_a_dataset_root(tmp_path):
    with pytest.raises(DatasetError, match="is this the ds005589 root"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(tmp_path / "nowhere")


def test_runs_listing_channels_in_another_order(broken_copy):
    from eegkit import DEFAULT_CHANNELS

    for k, path in enumerate(sorted(broken_copy.glob("sub-02/*/*_1000Hz.json"))):
        names = list(DEFAULT_CHANNELS) if k == 0 else list(reversed(DEFAULT_CHANNELS))
        path.write_text(json.dumps({"labels": json.loads(path.read_text()), "channel_names": names}))
    with pytest.raises(DatasetError, match="channel names differ from the first run"):
        load(broken_copy)


def test_channel_names_argument_of_the_wrong_length(broken_copy):
    with pytest.raises(DatasetError, match="122 channels but .* names 3"):
        load(broken_copy, channel_names=["Cz", "Pz", "Oz"])


@pytest.mark.parametrize("labels", [[25] * 20, ["bird"] * 20])
def test_metadata_json_with_bad_labels(broken_copy, labels):
    (broken_copy / f"{RUN}_1000Hz.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(DatasetError, match="category indices 0..19"):
        load(broken_copy)


def test_pointing_inside_the_published_tree_names_the_root(tmp_path, small_root):
    from eegkit.twin import make_twin

    root = tmp_path / "published"
    make_twin(root, preset="tiny", seed=0, layout="openneuro", subjects=("sub-02", "sub-03"), progress=False)
    inner = root / "derivatives" / "preprocessed_data"
    with pytest.raises(DatasetError, match=rf"derivatives/preprocessed_data folder .* dataset root, {root}$"):
        load(inner)
    with pytest.raises(DatasetError, match=rf"one subject's folder.* {small_root}, .*subjects=\['sub-02'\]"):
        load(small_root / "sub-02")
    with pytest.raises(DatasetError, match=r"one session's folder"):
        load(small_root / "sub-02" / "ses-01")
    # In the published layout the missing _image.csv is named in the raw folder, not in derivatives/.
    (root / f"{RUN}_image.csv").unlink()
    with pytest.raises(DatasetError, match=rf"^{root / RUN}_image.csv: missing \(.*npy, .*json exist"):
        load(root)


def test_a_subject_missing_a_session_is_loaded_with_a_warning(broken_copy):
    import shutil

    for path in (broken_copy / "sub-02").glob("ses-05"):
        shutil.rmtree(path)
    with pytest.warns(UserWarning, match=r"sub-02 has only ses-01, ses-02, ses-03, ses-04 \(of 5 sessions\)"):
        data = load_dataset(broken_copy, subjects=["sub-02", "sub-03"])
    assert set(data.trials.query("subject == 'sub-02'").session) == {"ses-01", "ses-02", "ses-03", "ses-04"}
    assert load(broken_copy).subjects == ("sub-03",)  # subjects="complete" leaves it out
