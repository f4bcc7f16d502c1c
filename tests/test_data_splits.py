import numpy as np
import pytest

from eegkit import load_dataset
from eegkit.data.splits import make_split
from eegkit.twin.generator import make_twin


@pytest.fixture(scope="module")
def data(tiny_root):
    return load_dataset(tiny_root)


@pytest.fixture(scope="module")
def two_run_data(tmp_path_factory):
    # within_session needs several trials of each category per session
    root = tmp_path_factory.mktemp("twin") / "two_runs"
    make_twin(root, preset="tiny", subjects=("sub-02", "sub-05"), n_runs=2, images_per_category=30,
              trials_per_category=3, progress=False)
    return load_dataset(root, subjects="complete")


def assert_partition(split, n_rows):
    parts = [split.train, split.val, split.test]
    assert all(len(p) for p in parts)
    together = np.concatenate(parts)
    assert len(together) == len(np.unique(together)) == n_rows  # disjoint, nothing dropped


def test_session_split_is_leak_free(data):
    split = make_split(data.trials)
    assert_partition(split, len(data))
    table = data.trials
    pairs = {
        name: set(zip(table.subject.iloc[rows], table.session.iloc[rows]))
        for name, rows in split.parts().items()
    }
    assert not (pairs["train"] & pairs["val"] or pairs["train"] & pairs["test"] or pairs["val"] & pairs["test"])
    for subject, trials in table.groupby("subject"):
        sessions = {name: set(table.session.iloc[rows][table.subject.iloc[rows] == subject])
                    for name, rows in split.parts().items()}
        assert sessions == {"train": {"ses-01", "ses-02", "ses-03"}, "val": {"ses-04"}, "test": {"ses-05"}}


def test_session_split_is_configurable(data):
    split = make_split(data.trials, train_sessions=[2, 3, 4], val_sessions=["ses-05"], test_sessions=[1])
    assert set(data.trials.session.iloc[split.test]) == {"ses-01"}
    with pytest.raises(ValueError, match="in two parts"):
        make_split(data.trials, train_sessions=[1, 2], val_sessions=[2], test_sessions=[3])
    with pytest.raises(ValueError, match=r"\['ses-09'\] are not in the data"):
        make_split(data.trials, train_sessions=[1, 2], val_sessions=[9], test_sessions=[3])


def test_cross_subject_split_holds_subjects_out(data):
    split = make_split(data.trials, "cross_subject", val_subjects=["sub-03"], test_subjects=["sub-05", "sub-09"])
    assert_partition(split, len(data))
    subjects = {name: set(data.trials.subject.iloc[rows]) for name, rows in split.parts().items()}
    assert subjects["val"] == {"sub-03"} and subjects["test"] == {"sub-05", "sub-09"}
    assert not subjects["train"] & (subjects["val"] | subjects["test"])


def test_within_session_split_is_leak_free_and_stratified(two_run_data):
    data = two_run_data
    split = make_split(data.trials, "within_session", seed=3)
    assert_partition(split, len(data))
    for rows in split.parts().values():
        part = data.trials.iloc[rows]
        # every (subject, session) appears in every part with every category
        assert part.groupby(["subject", "session"]).category_id.nunique().eq(20).all()
    again = make_split(data.trials, "within_session", seed=3)
    np.testing.assert_array_equal(split.test, again.test)


def test_within_session_refuses_too_few_trials(data):
    with pytest.raises(ValueError, match="too few"):
        make_split(data.trials, "within_session")


def test_unknown_protocol(data):
    with pytest.raises(ValueError, match="protocol='random': choose one of"):
        make_split(data.trials, "random")


def test_a_single_subject_string_is_one_subject(data):
    split = make_split(data.trials, "cross_subject", val_subjects="sub-03", test_subjects="sub-05")
    assert set(data.trials.subject.iloc[split.test]) == {"sub-05"}


def test_split_repr_is_one_line_summary(data):
    split = make_split(data.trials, "session")
    text = repr(split)
    assert "\n" not in text and len(text) < 200
    assert text.startswith("Split('session', ")
    assert f"train={len(split.train)}" in text and f"test={len(split.test)}" in text
    assert "array" not in text
