"""Every choice eegkit makes is made on the validation split, never on the test split.

Each choice of the "choices" table of ``tests/README.md`` gets two kinds of proof:

* **Which rows were scored.** A spy records the rows every candidate is scored on
  (the trials a caption ranking ranks, the features a classifier predicts, the trials
  ``fit`` computes its validation loss on): the test trials are scored once, by the
  chosen candidate, after the choice; every other score is on validation trials.
* **The test split cannot move the choice.** The choice is made again with the test
  trials scrambled (:func:`conftest.corrupt_test_split`: their EEG and labels; or, for
  a choice among finished runs, their predictions replaced by perfect and by
  perfectly wrong ones): the scores it is made on and the choice stay the same, while
  the test scores change, which shows that the scrambling reached the pipeline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import ENCODER, corrupt_test_split

from eegkit import CATEGORIES, classification
from eegkit.classification import run_classification
from eegkit.data.splits import make_split
from eegkit.retrieval import model as retrieval_model
from eegkit.retrieval import references, runner
from eegkit.retrieval.references import linear_map_retrieval
from eegkit.retrieval.runner import CategoryPrior, RetrievalConfig, run_retrieval
from eegkit.train import TrainConfig

#: History columns that measure time, not the data.
TIMING = ["seconds", "train_trials_per_second"]


@pytest.fixture(scope="module")
def split(small_data):
    return make_split(small_data.trials, "session")


@pytest.fixture(scope="module")
def corrupted(small_data, split):
    """The small twin with its test trials' EEG and labels scrambled, the rest untouched."""
    data = corrupt_test_split(small_data, split)
    test, kept = np.asarray(split.test), np.setdiff1d(np.arange(len(small_data.trials)), split.test)
    assert not np.isclose(data.get_trials(test), small_data.get_trials(test)).all(axis=(1, 2)).any()
    assert (data.trials["caption_id"].to_numpy()[test] != small_data.trials["caption_id"].to_numpy()[test]).mean() > 0.5
    np.testing.assert_array_equal(data.get_trials(kept), small_data.get_trials(kept))
    pd.testing.assert_frame_equal(data.trials.iloc[kept], small_data.trials.iloc[kept])
    return data


@pytest.fixture(autouse=True)
def fresh_encodings(monkeypatch):
    """An empty cache of frozen-encoder features, so that no run reuses another's (the
    cache is keyed by rows and weights, not by the EEG itself)."""
    monkeypatch.setattr(retrieval_model, "_ENCODED", {})


def _part_of(rows, split) -> str:
    """``"train"``, ``"val"`` or ``"test"``: the part that holds all of ``rows``; else ``"mixed"``."""
    for part, held in split.parts().items():
        if np.isin(rows, held).all():
            return part
    return "mixed"


def _ranked_parts(monkeypatch, module, data, split) -> list[str]:
    """The part of the split whose trials each ``rank_captions`` call of ``module`` ranks, in call order."""
    position = pd.Series(np.arange(len(data.trials)),
                         index=pd.MultiIndex.from_frame(data.trials[["run_index", "trial"]]))
    seen = []
    original = module.rank_captions

    def spy(query_emb, bank_emb, queries, bank, **kwargs):
        rows = position.loc[list(zip(queries["run_index"], queries["trial"]))].to_numpy()
        seen.append(_part_of(rows, split))
        return original(query_emb, bank_emb, queries, bank, **kwargs)

    monkeypatch.setattr(module, "rank_captions", spy)
    return seen


def test_ridge_alpha_is_chosen_on_validation(small_data, corrupted, split, random_clip, monkeypatch):
    """``linear_map_retrieval``: every alpha is scored on the validation trials, the test
    trials are ranked once, by the chosen map; scrambling them moves nothing chosen."""
    kwargs = dict(alphas=(1.0, 1e2, 1e4), n_boot=10, bertscore_model=False)
    ranked = _ranked_parts(monkeypatch, references, small_data, split)
    clean = linear_map_retrieval(small_data, split, random_clip, **kwargs)
    assert ranked == ["val"] * len(kwargs["alphas"]) + ["test"]
    ranked.clear()
    scrambled = linear_map_retrieval(corrupted, split, random_clip, **kwargs)
    pd.testing.assert_frame_equal(clean.validation, scrambled.validation)
    assert clean.alpha == scrambled.alpha
    assert not np.allclose(clean.test.similarity, scrambled.test.similarity)


def test_logistic_regression_strength_is_chosen_on_validation(small_data, corrupted, split, monkeypatch):
    """``run_classification("logistic")``: only the estimator of the chosen C ever sees the
    test trials' features; scrambling the test trials moves neither C nor its validation
    accuracy."""
    from eegkit.models.classical import split_features

    test_features = split_features(small_data, split)["test"]
    shown_test = []  # the C of every estimator given the test features
    original_make = classification.make_classical

    def recording_make(name, C=0.01, seed=0):
        estimator = original_make(name, C=C, seed=seed)
        for method in ("predict", "predict_proba", "predict_log_proba", "decision_function", "score"):
            def spy(X, *args, _original=getattr(estimator, method), **kwargs):
                if np.array_equal(X, test_features):
                    shown_test.append(C)
                return _original(X, *args, **kwargs)
            setattr(estimator, method, spy)
        return estimator

    monkeypatch.setattr(classification, "make_classical", recording_make)
    config = TrainConfig(device="cpu")
    clean = run_classification(small_data, split, "logistic", config, n_boot=10, n_perm=10, progress=False)
    assert set(shown_test) == {clean.fit.config["C"]}  # (sklearn's methods call one another)
    scrambled = run_classification(corrupted, split, "logistic", config, n_boot=10, n_perm=10, progress=False)
    assert clean.fit.config["C"] == scrambled.fit.config["C"]
    pd.testing.assert_frame_equal(clean.fit.history.drop(columns=TIMING), scrambled.fit.history.drop(columns=TIMING))
    np.testing.assert_array_equal(clean.val_predictions["logits"], scrambled.val_predictions["logits"])
    assert not np.array_equal(clean.predictions["logits"], scrambled.predictions["logits"])


def _with_test_predictions(run, correct: bool):
    """``run`` with its test predictions replaced: every trial right, or every trial wrong."""
    y = run.predictions["y"]
    target = y if correct else (y + 1) % len(CATEGORIES)
    logits = np.full((len(y), len(CATEGORIES)), -50.0, dtype=np.float32)
    logits[np.arange(len(y)), target] = 0.0
    return dataclasses.replace(run, predictions={**run.predictions, "logits": logits})


def test_classifier_behind_classify_then_retrieve_is_chosen_on_validation(small_data, corrupted, split):
    """Notebook 05 takes the Task 1 classifier with the best ``validation_accuracy``: that
    accuracy is the validation trials', for an ensemble's averaged prediction, a
    classical model's and a run read back without validation predictions (its
    history); perfect or perfectly wrong test predictions move neither it nor the choice."""
    config = TrainConfig(max_epochs=1, batch_size=64, device="cpu")
    ensemble = run_classification(small_data, split, "wang_fc", config, n_seeds=2, n_boot=10, n_perm=10,
                                  progress=False)
    lda = run_classification(small_data, split, "lda", config, n_boot=10, n_perm=10, progress=False)
    runs = [ensemble, lda, dataclasses.replace(ensemble, val_predictions=None)]
    for run in runs:
        accuracies = {run_.validation_accuracy for run_ in (run, _with_test_predictions(run, True),
                                                            _with_test_predictions(run, False))}
        assert accuracies == {run.validation_accuracy}
    chosen = {max(range(len(runs)), key=lambda i: group[i].validation_accuracy)
              for group in (runs, [_with_test_predictions(run, correct) for run, correct in zip(runs, (1, 0, 1))],
                            [_with_test_predictions(run, correct) for run, correct in zip(runs, (0, 1, 0))])}
    assert len(chosen) == 1
    # the ensemble's validation prediction is its members' prediction of the validation trials
    scrambled = run_classification(corrupted, split, "wang_fc", config, n_seeds=2, n_boot=10, n_perm=10,
                                   progress=False)
    np.testing.assert_array_equal(ensemble.val_predictions["logits"], scrambled.val_predictions["logits"])
    assert not np.array_equal(ensemble.predictions["logits"], scrambled.predictions["logits"])


def test_retrieval_configuration_and_category_head_prior_weight_are_chosen_on_validation(
        small_data, corrupted, split, random_clip, monkeypatch):
    """``run_retrieval``: the category-prior weight and the validation scores notebook 05
    chooses a configuration by (``selection_score``) are the validation trials'; the
    test trials are ranked once, with the chosen weight; scrambling them moves nothing
    chosen."""
    train = TrainConfig(max_epochs=1, device="cpu")
    configs = [RetrievalConfig(lambdas={"infonce": 1.0, "ce": 1.0}, prior_weights=(0.0, 1.0, 4.0),
                               encoder_kwargs=ENCODER, train_eeg_encoder=False),
               RetrievalConfig(lambdas={"cos": 1.0, "ce": 1.0}, encoder_kwargs=ENCODER, train_eeg_encoder=False)]
    ranked = _ranked_parts(monkeypatch, runner, small_data, split)

    def runs(data):
        retrieval_model._ENCODED.clear()
        return [run_retrieval(data, split, random_clip, config, train, n_boot=10, bertscore_model=False,
                              progress=False) for config in configs]

    clean = runs(small_data)
    assert ranked == ["val"] * 3 + ["test"] + ["val", "test"]
    scrambled = runs(corrupted)
    for before, after in zip(clean, scrambled):
        assert before.validation == after.validation
        assert before.selection_score == after.selection_score
        assert before.prior_weight == after.prior_weight
        assert not np.allclose(before.test.similarity, after.test.similarity)
    chosen = [max(range(len(configs)), key=lambda i: group[i].selection_score) for group in (clean, scrambled)]
    assert chosen[0] == chosen[1]


def test_classifier_prior_weight_is_chosen_on_validation(small_data, split, random_clip):
    """``run_retrieval(category_prior=...)``: a Task 1 classifier's prior that is perfect
    on the test trials, or perfectly wrong there, gets the same weight: the one its
    validation trials choose (a choice on the test trials would take the largest weight
    for the one and the smallest for the other). No weight is 0, so the chosen one
    always lets the test prior through and the test scores must differ: a weak
    validation prior (twin version 4) would otherwise choose 0 and hide it."""
    lda = run_classification(small_data, split, "lda", TrainConfig(device="cpu"), n_boot=10, n_perm=10,
                             progress=False)
    config = RetrievalConfig(lambdas={"infonce": 1.0}, prior_weights=(1.0, 10.0), encoder_kwargs=ENCODER,
                             train_eeg_encoder=False)
    runs = [run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                          category_prior=CategoryPrior.from_classification(_with_test_predictions(lda, correct)),
                          n_boot=10, bertscore_model=False, progress=False) for correct in (True, False)]
    assert runs[0].prior_weight == runs[1].prior_weight
    assert runs[0].validation == runs[1].validation
    assert runs[0].selection_score == runs[1].selection_score
    assert not np.allclose(runs[0].test.similarity, runs[1].test.similarity)


def _validation_rows(monkeypatch) -> list:
    """Rows of every loader ``fit`` computes a validation loss on, in call order."""
    from eegkit import train

    seen = []
    original = train.evaluate_loss

    def spy(model, objective, loader, *args, **kwargs):
        seen.append(np.sort(np.asarray(loader.dataset.rows)))
        return original(model, objective, loader, *args, **kwargs)

    monkeypatch.setattr(train, "evaluate_loss", spy)
    return seen


@pytest.mark.parametrize("pipeline", ["run_classification", "run_retrieval, EEG trained",
                                      "run_retrieval, EEG frozen"])
def test_best_epoch_is_chosen_on_validation_rows(small_data, split, random_clip, monkeypatch, pipeline):
    """The best epoch (early stopping) is chosen on the loss of the validation trials
    alone, in every pipeline that calls ``fit``."""
    seen = _validation_rows(monkeypatch)
    config = TrainConfig(max_epochs=2, batch_size=64, patience=5, device="cpu")
    if pipeline == "run_classification":
        run = run_classification(small_data, split, "wang_fc", config, n_boot=10, n_perm=10, progress=False)
    else:
        retrieval = RetrievalConfig(lambdas={"infonce": 1.0}, encoder_kwargs=ENCODER,
                                    train_eeg_encoder=pipeline.endswith("trained"))
        run = run_retrieval(small_data, split, random_clip, retrieval, config, n_boot=10, bertscore_model=False,
                            progress=False)
    assert len(seen) == len(run.fit.history) == 2
    for rows in seen:
        np.testing.assert_array_equal(rows, np.sort(split.val))
