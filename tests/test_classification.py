import numpy as np
import pytest
from conftest import SCRIPTED_VAL_LOSSES, same_weights

from eegkit import load_dataset
from eegkit.classification import run_classification
from eegkit.data.splits import make_split
from eegkit.train import TrainConfig


@pytest.fixture(scope="module")
def data(tiny_root):
    return load_dataset(tiny_root)


@pytest.fixture(scope="module")
def loud_data(tmp_path_factory):
    """The tiny twin with 3x the evoked amplitude: the realistic twin (generator v3)
    is at chance for any decoder trained on the tiny twin's 780 training trials."""
    from eegkit.twin.generator import get_preset, make_twin

    root = tmp_path_factory.mktemp("twin") / "loud"
    make_twin(root, preset="tiny", progress=False, snr=3 * get_preset("tiny").snr)
    return load_dataset(root)


def test_scores_are_computed_on_the_test_trials_only(data, tmp_path):
    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=1, batch_size=32)
    run = run_classification(data, split, "wang_fc", config, tmp_path, n_boot=20, n_perm=20, progress=False)
    assert sorted(run.predictions["row"]) == sorted(split.test)
    np.testing.assert_array_equal(run.predictions["y"], data.trials.category_id.to_numpy()[run.predictions["row"]])
    assert run.scores["n_trials"].eq(len(split.test)).all()
    assert set(data.trials.session.iloc[run.predictions["row"]]) == {"ses-05"}
    rows = run.results_rows()
    assert {"model", "protocol", "value", "ci_low", "ci_high", "chance", "p_value"} <= set(rows.columns)
    checkpoints = list(tmp_path.glob("wang_fc_session_*.pt"))
    assert len(checkpoints) == 1
    # another config is another run: it must not reuse that checkpoint
    run_classification(data, split, "wang_fc", TrainConfig(max_epochs=1, batch_size=32, lr=5e-4),
                       tmp_path, n_boot=20, n_perm=20, progress=False)
    assert len(list(tmp_path.glob("wang_fc_session_*.pt"))) == 2


def test_cross_subject_scores_held_out_subjects_with_the_mean_head(data):
    split = make_split(data.trials, "cross_subject")
    run = run_classification(data, split, "multihead", TrainConfig(max_epochs=1, batch_size=32),
                             model_kwargs={"d": 16, "n_layers": 1, "n_heads": 2}, n_boot=20, n_perm=20,
                             progress=False)
    assert len(run.fit.model.subjects) == 11  # no head for the 2 held-out subjects
    assert set(data.trials.subject.iloc[run.predictions["row"]]) == {"sub-29"}
    assert np.isfinite(run.predictions["logits"]).all()


def test_normaliser_is_fitted_on_the_training_split_only(data, normalizer_rows):
    split = make_split(data.trials, "session")
    run_classification(data, split, "wang_fc", TrainConfig(max_epochs=1, batch_size=64), n_boot=10, n_perm=10,
                       progress=False)
    assert len(normalizer_rows) == 1
    np.testing.assert_array_equal(normalizer_rows[0], np.sort(split.train))


def test_returned_model_has_the_best_validation_epochs_weights(data, scripted_validation):
    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=len(SCRIPTED_VAL_LOSSES), batch_size=64, patience=10)
    run = run_classification(data, split, "wang_fc", config, n_boot=10, n_perm=10, progress=False)
    best = int(np.argmin(SCRIPTED_VAL_LOSSES))
    assert run.fit.best_epoch == best + 1
    assert same_weights(run.fit.model, scripted_validation[best])
    assert not same_weights(run.fit.model, scripted_validation[-1])  # training moved on after the best


@pytest.mark.parametrize("name", ["lda", "logistic"])
def test_classical_references_see_only_the_training_split(loud_data, monkeypatch, name):
    from eegkit import classification
    data = loud_data
    from eegkit.models.classical import SubjectStandardizer

    split = make_split(data.trials, "session")
    seen = {"scaler": [], "estimator": []}
    original_fit = SubjectStandardizer.fit.__func__
    monkeypatch.setattr(SubjectStandardizer, "fit", classmethod(
        lambda cls, features, subject: seen["scaler"].append(features.copy()) or original_fit(cls, features, subject)))
    original_make = classification.make_classical

    def recording_make(*args, **kwargs):
        estimator = original_make(*args, **kwargs)
        fit = estimator.fit
        estimator.fit = lambda X, y: seen["estimator"].append(X.copy()) or fit(X, y)
        return estimator

    monkeypatch.setattr(classification, "make_classical", recording_make)
    run = run_classification(data, split, name, TrainConfig(), n_boot=20, n_perm=20, progress=False)
    from eegkit.models.classical import trial_features

    train_features = trial_features(data, np.asarray(split.train))
    assert len(seen["scaler"]) == 1
    np.testing.assert_array_equal(seen["scaler"][0], train_features)
    assert seen["estimator"] and all(len(X) == len(split.train) for X in seen["estimator"])
    assert sorted(run.predictions["row"]) == sorted(split.test)
    assert run.scores.set_index("metric").loc["accuracy", "value"] > 0.05  # the twin's signal is linear
    assert len(run.results_rows()) == len(run.scores)


def test_binned_features_average_each_bin():
    from eegkit.models.classical import binned_features

    X = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    features = binned_features(X, sfreq=100.0, bin_seconds=0.05)  # 5 samples a bin
    assert features.shape == (2, 3 * 2)
    np.testing.assert_allclose(features[0, :2], [X[0, 0, :5].mean(), X[0, 0, 5:].mean()])


def test_an_ensemble_over_seeds_averages_the_probabilities_of_its_members(data, tmp_path):
    import torch

    from eegkit.data.torchdata import SplitDatasets
    from eegkit.models import subject_lookup
    from eegkit.train import predict

    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=1, batch_size=32, seed=3)
    single = run_classification(data, split, "wang_fc", config, tmp_path, n_boot=10, n_perm=10, progress=False)
    ensemble = run_classification(data, split, "wang_fc", config, tmp_path, n_seeds=2, n_boot=10, n_perm=10,
                                  progress=False)
    assert [m.config["seed"] for m in ensemble.members] == [3, 4]
    assert ensemble.members[0].reused_epochs == 1  # the first member is the single model, reused
    assert same_weights(ensemble.members[0].model, single.fit.model.state_dict())
    sets = SplitDatasets.from_split(data, split)
    lookup = subject_lookup(sets.train_subjects, data.subjects)
    probabilities = [torch.softmax(torch.from_numpy(predict(m.model, part, lookup)["logits"]), 1)
                     for part in (sets.test, sets.val) for m in ensemble.members]
    expected_test = torch.log((probabilities[0] + probabilities[1]) / 2).numpy()
    np.testing.assert_allclose(ensemble.predictions["logits"], expected_test, rtol=1e-5, atol=1e-5)
    val_prediction = ((probabilities[2] + probabilities[3]) / 2).argmax(1).numpy()
    y_val = data.trials["category_id"].to_numpy()[sets.val.rows]
    assert ensemble.validation_accuracy == pytest.approx((val_prediction == y_val).mean())
    scores = ensemble.validation_scores(n_boot=50)
    assert scores["value"] == ensemble.validation_accuracy and scores["ci_low"] <= scores["value"] <= scores["ci_high"]
    # one model: its validation predictions give the history's accuracy at the best epoch
    history = single.fit.history
    assert single.validation_accuracy == pytest.approx(
        float(history.loc[history["epoch"] == single.fit.best_epoch, "val_acc"].iloc[0]))
    rows = ensemble.results_rows()
    assert (rows["ensemble"] == 2).all() and (single.results_rows()["ensemble"] == 1).all()
    assert ensemble.n_parameters == 2 * single.n_parameters
    with pytest.raises(ValueError, match="at least one model"):
        run_classification(data, split, "wang_fc", config, n_seeds=0)


def test_multihead_recipe_adds_up_the_steps():
    from eegkit.classification import MULTIHEAD_RECIPE, MULTIHEAD_STEPS, multihead_recipe

    steps = [("plain", {}), ("a", {"model_kwargs": {"dropout": 0.3}, "n_seeds": 2}),
             ("b", {"model_kwargs": {"shared_head": True}, "n_seeds": 3})]
    assert multihead_recipe(steps[:1]) == {}
    assert multihead_recipe(steps) == {"model_kwargs": {"dropout": 0.3, "shared_head": True}, "n_seeds": 3}
    assert MULTIHEAD_RECIPE == multihead_recipe(MULTIHEAD_STEPS)
    assert MULTIHEAD_STEPS[0] == ("handout model", {})  # the ablation starts from the handout's model
    import inspect

    from eegkit.classification import run_classification
    accepted = set(inspect.signature(run_classification).parameters)
    assert all(set(change) <= accepted for _, change in MULTIHEAD_STEPS)


def test_recording_normalisation_fits_each_part_on_its_own_rows(data, tmp_path, recording_normalizer_rows):
    seen = recording_normalizer_rows
    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=1, batch_size=32)
    small = {"d": 16, "n_layers": 1, "n_heads": 2}
    run = run_classification(data, split, "multihead", config, tmp_path, model_kwargs=small,
                             normalization="recording", n_boot=10, n_perm=10, progress=False)
    assert [len(rows) for rows in seen] == [len(split.train), len(split.val), len(split.test)]
    for rows, part in zip(seen, (split.train, split.val, split.test)):
        np.testing.assert_array_equal(rows, np.sort(part))
    assert np.isfinite(run.predictions["logits"]).all()
    # another normalisation is another run: its checkpoint is not reused
    run_classification(data, split, "multihead", config, tmp_path, model_kwargs=small, n_boot=10, n_perm=10,
                       progress=False)
    assert len(list(tmp_path.glob("multihead_session_*.pt"))) == 2


def test_members_trained_in_worker_processes_are_the_same_runs(data, tmp_path):
    """workers=2: the members train in spawned processes, with the same seeds and
    checkpoints; the ensemble equals the one trained in this process up to float
    rounding (here with as many torch threads as each worker gets, so that equal)."""
    import dataclasses

    import torch

    from eegkit.classification import member_workers, usable_cpus

    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=1, batch_size=32, seed=2, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cpus() // 2))
    try:
        here = run_classification(data, split, "multihead", config, tmp_path / "here", n_seeds=2, n_boot=10,
                                  n_perm=10, progress=False, normalization="recording")
    finally:
        torch.set_num_threads(threads)
    apart = run_classification(data, split, "multihead", config, tmp_path / "apart", n_seeds=2, n_boot=10,
                               n_perm=10, progress=False, normalization="recording", workers=2)
    assert [m.config["seed"] for m in apart.members] == [2, 3]
    assert sorted(p.name for p in (tmp_path / "apart").iterdir()) == sorted(p.name for p in (tmp_path / "here").iterdir())
    np.testing.assert_allclose(apart.predictions["logits"], here.predictions["logits"], atol=1e-5)
    np.testing.assert_array_equal(apart.predictions["row"], here.predictions["row"])
    for ours, theirs in zip(apart.members, here.members):
        for key, value in theirs.model.state_dict().items():
            np.testing.assert_allclose(ours.model.state_dict()[key].numpy(), value.numpy(), atol=1e-5)
    # the ensemble's rate: two members side by side take one round, one after the other two
    rates = [float(m.history["train_trials_per_second"].mean()) for m in apart.members]
    assert apart.n_workers == 2 and apart.train_trials_per_second == pytest.approx(2 / sum(1 / r for r in rates))
    rates = [float(m.history["train_trials_per_second"].mean()) for m in here.members]
    assert here.results_rows()["train_trials_per_second"].iloc[0] == pytest.approx(1 / sum(1 / r for r in rates))
    # a finished run is read back from its checkpoints, whichever process trained it
    again = run_classification(data, split, "multihead", config, tmp_path / "apart", n_seeds=2, n_boot=10,
                               n_perm=10, progress=False, normalization="recording")
    assert [m.reused_epochs for m in again.members] == [1, 1]
    assert member_workers("auto", 3, "cpu") == 3 and member_workers(5, 3) == 3 and member_workers(1, 3) == 1
    # three members in two processes: two rounds, each as long as a member on average
    three = dataclasses.replace(apart, members=[*apart.members, apart.members[0]])
    rates = [float(m.history["train_trials_per_second"].mean()) for m in three.members]
    assert three.train_trials_per_second == pytest.approx(1 / (2 * np.mean([1 / r for r in rates])))
    with pytest.raises(ValueError, match="positive number of processes"):
        member_workers(0, 3)


def test_a_member_that_fails_in_a_worker_raises_here(data):
    split = make_split(data.trials, "session")
    with pytest.raises(ValueError, match="readout='nowhere': choose one of"):
        run_classification(data, split, "multihead", TrainConfig(max_epochs=1, device="cpu"), None,
                           model_kwargs={"readout": "nowhere"}, n_seeds=2, n_boot=10, n_perm=10,
                           progress=False, workers=2)
