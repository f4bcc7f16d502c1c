"""Task 2B: the EEG-caption model, text-encoder strategies and run_retrieval."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ENCODER, SCRIPTED_VAL_LOSSES, same_weights

from eegkit.data.splits import make_split
from eegkit.retrieval.runner import RetrievalConfig, run_retrieval
from eegkit.train import TrainConfig


def test_config_rejects_unknown_terms_and_strategies():
    with pytest.raises(ValueError, match="unknown loss terms"):
        RetrievalConfig(lambdas={"triplet": 1.0})
    with pytest.raises(ValueError, match="unknown strategy"):
        RetrievalConfig(strategy="prompt")


@pytest.mark.parametrize("strategy", ["both_frozen", "lora"])
def test_run_retrieval_scores_the_test_split(small_data, random_clip, strategy):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"kd": 1.0, "debiased": 1.0, "ce": 0.5}, strategy=strategy,
                             encoder_kwargs=ENCODER)
    run = run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                        n_boot=20, bertscore_model=False, progress=False)
    test_rows = small_data.trials.iloc[split.test]
    assert len(run.test.per_query) == len(test_rows)  # every test trial is a query, none other
    assert (run.test.per_query["caption_id"].to_numpy() == test_rows["caption_id"].to_numpy()).all()
    assert set(run.test.bank["caption_id"]) == set(test_rows["caption_id"])
    assert {"Recall@5 (instance)", "MAP (class-aware)"} <= set(run.test.scores["metric"])
    row = run.summary_row()
    # Counted here from the parameter names: only LoRA's low-rank matrices may train.
    lora = sum(p.numel() for name, p in run.fit.model.text.named_parameters() if "lora_" in name)
    assert row["trainable text params"] == (0 if strategy == "both_frozen" else lora)
    assert (row["trainable text params"] > 0) == (strategy == "lora")
    if strategy == "both_frozen":  # only the projection heads and the category head train
        heads = sum(p.numel() for p in run.fit.model.heads.parameters())
        assert row["trainable EEG params"] == heads + sum(p.numel() for p in run.fit.model.category_head.parameters())


@pytest.mark.parametrize("train_eeg_encoder", [True, False])
def test_normaliser_is_fitted_on_the_training_split_only(small_data, random_clip, normalizer_rows,
                                                         train_eeg_encoder):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"infonce": 1.0}, encoder_kwargs=ENCODER, train_eeg_encoder=train_eeg_encoder)
    run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                  n_boot=10, bertscore_model=False, progress=False)
    assert len(normalizer_rows) == 1
    np.testing.assert_array_equal(normalizer_rows[0], np.sort(split.train))


def test_returned_model_has_the_best_validation_epochs_weights(small_data, random_clip, scripted_validation):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"infonce": 1.0}, encoder_kwargs=ENCODER)
    train = TrainConfig(max_epochs=len(SCRIPTED_VAL_LOSSES), patience=10, device="cpu")
    run = run_retrieval(small_data, split, random_clip, config, train, n_boot=10, bertscore_model=False,
                        progress=False)
    best = int(np.argmin(SCRIPTED_VAL_LOSSES))
    assert run.fit.best_epoch == best + 1
    assert same_weights(run.fit.model, scripted_validation[best])
    assert not same_weights(run.fit.model, scripted_validation[-1])
