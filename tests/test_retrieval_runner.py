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
    with pytest.raises(ValueError, match="strategy='prompt': choose one of"):
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
    # the learning curves' in-batch category accuracy: a trial whose own caption ranks first
    # in its batch is a category hit too
    history = run.fit.history
    for part in ("train", "val"):
        assert history[f"{part}_category_acc"].between(0, 1).all()
        assert (history[f"{part}_category_acc"] >= history[f"{part}_acc"]).all()
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


def test_prior_weights_need_a_category_head_or_a_classifier(small_data, random_clip):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"infonce": 1.0}, prior_weights=[0, 2], encoder_kwargs=ENCODER)
    assert config.prior_weights == (0.0, 2.0)
    with pytest.raises(ValueError, match="'ce' term .* or pass category_prior"):
        run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                      n_boot=10, bertscore_model=False, progress=False)


def test_category_prior_from_a_classifier_weighs_its_log_probabilities(small_data, random_clip):
    """The prior of a trained classifier (here shrinkage LDA) replaces the category head in the ranking."""
    from eegkit.classification import run_classification
    from eegkit.data.torchdata import SplitDatasets
    from eegkit.models import subject_lookup
    from eegkit.retrieval.clip import caption_bank
    from eegkit.retrieval.model import eeg_outputs
    from eegkit.retrieval.runner import CategoryPrior

    import torch

    split = make_split(small_data.trials, "session")
    lda = run_classification(small_data, split, "lda", TrainConfig(device="cpu"), n_boot=10, n_perm=2)
    # the classical run keeps its validation predictions, which agree with its history
    np.testing.assert_array_equal(lda.val_predictions["row"], split.val)
    assert lda.validation_accuracy == pytest.approx(lda.fit.history["val_acc"].iloc[0])
    prior = CategoryPrior.from_classification(lda)
    # every validation and test trial, once, each with its own prediction
    assert sorted(prior.log_proba.index) == sorted([*split.val, *split.test]) and prior.protocol == "session"
    for out in (lda.val_predictions, lda.predictions):
        np.testing.assert_allclose(prior.log_proba.loc[out["row"]].to_numpy(),
                                   torch.log_softmax(torch.from_numpy(out["logits"]), dim=1).numpy(), atol=1e-6)
    config = RetrievalConfig(lambdas={"infonce": 1.0}, prior_weights=(0.0, 2.0), encoder_kwargs=ENCODER,
                             train_eeg_encoder=False)
    run = run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                        category_prior=prior, n_boot=10, bertscore_model=False, progress=False)
    assert f"category prior ({lda.label})" in run.summary_row()["loss"]
    # the weight is the one with the best validation score, the prior's log-probabilities included
    from eegkit.retrieval.runner import _rank

    lookup = subject_lookup(SplitDatasets.from_split(small_data, split).train_subjects, small_data.subjects)
    val = _rank(run.fit.model, SplitDatasets.from_split(small_data, split).val, lookup,
                run.fit.model.text.embed_all().detach().numpy(), "cpu", n_boot=None,
                prior_weights=config.prior_weights, temperature=config.temperature, category_prior=prior,
                part="validation")
    selection = {w: sum(r.per_query[m].mean() for m in ("recall@5", "class_recall@1", "ap")) for w, r in val.items()}
    assert selection[run.prior_weight] == max(selection.values())
    # the test ranking: cosine + w * temperature * the classifier's log p(category)
    config = RetrievalConfig(lambdas={"infonce": 1.0}, prior_weights=(2.0,), encoder_kwargs=ENCODER,
                             train_eeg_encoder=False)
    run = run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                        category_prior=prior, n_boot=10, bertscore_model=False, progress=False)
    sets = SplitDatasets.from_split(small_data, split)
    out = eeg_outputs(run.fit.model, sets.test, subject_lookup(sets.train_subjects, small_data.subjects), device="cpu")
    bank = caption_bank(small_data.trials.iloc[split.test])
    text = run.fit.model.text.embed_all().detach().numpy()[bank["caption_id"].to_numpy()]
    lda_log_proba = prior.log_proba.loc[split.test].to_numpy()[:, bank["category_id"]]
    expected = out["eeg"] @ text.T + 2.0 * config.temperature * lda_log_proba
    np.testing.assert_allclose(run.test.similarity, expected, rtol=1e-4, atol=1e-4)
    # a prior from other trials or another split is refused before training, naming what is wrong
    partial = CategoryPrior(prior.log_proba.drop(index=split.test[:3]), "LDA", "session")
    with pytest.raises(ValueError, match="no prediction for 3 test trials"):
        run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                      category_prior=partial, n_boot=10, bertscore_model=False, progress=False)
    other = CategoryPrior(prior.log_proba, "LDA", "cross_subject")
    with pytest.raises(ValueError, match="cross_subject split, not the session split"):
        run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                      category_prior=other, n_boot=10, bertscore_model=False, progress=False)


def test_category_prior_is_chosen_on_validation_and_ranks_by_cosine_plus_log_probability(small_data, random_clip):
    import torch

    from eegkit.data.torchdata import SplitDatasets
    from eegkit.models import MultiHeadEEGNet, subject_lookup
    from eegkit.retrieval.clip import caption_bank
    from eegkit.retrieval.model import eeg_outputs

    split = make_split(small_data.trials, "session")
    sets = SplitDatasets.from_split(small_data, split)
    task1 = MultiHeadEEGNet(small_data.n_chans, small_data.n_times, small_data.sfreq, sets.train_subjects, **ENCODER)
    config = RetrievalConfig(lambdas={"infonce": 1.0, "ce": 1.0}, prior_weights=(0.0, 1.0, 4.0),
                             encoder_kwargs=ENCODER, train_eeg_encoder=False)
    run = run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                        encoder_state=task1.encoder.state_dict(), category_state=task1.heads.state_dict(),
                        n_boot=10, bertscore_model=False, progress=False)
    assert run.prior_weight in config.prior_weights
    assert run.summary_row()["category prior weight"] == run.prior_weight
    # the test ranking is cosine + w * temperature * log p(category), w chosen on validation
    model = run.fit.model
    out = eeg_outputs(model, sets.test, subject_lookup(sets.train_subjects, small_data.subjects), device="cpu")
    bank = caption_bank(small_data.trials.iloc[split.test])
    text = model.text.embed_all().detach().numpy()[bank["caption_id"].to_numpy()]
    expected = out["eeg"] @ text.T + run.prior_weight * config.temperature * out["log_proba"][:, bank["category_id"]]
    np.testing.assert_allclose(run.test.similarity, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out["log_proba"], out["log_proba"][:1])  # the prior differs between trials
    # w is the best on the validation trials (instance Recall@5 + class-aware Recall@1 + MAP)
    from eegkit.retrieval.runner import _rank

    lookup = subject_lookup(sets.train_subjects, small_data.subjects)
    val = _rank(model, sets.val, lookup, model.text.embed_all().detach().numpy(), "cpu", n_boot=None,
                prior_weights=config.prior_weights, temperature=config.temperature)
    selection = {w: sum(r.per_query[m].mean() for m in ("recall@5", "class_recall@1", "ap")) for w, r in val.items()}
    assert selection[run.prior_weight] == max(selection.values())
    assert run.validation["recall@5"] == val[run.prior_weight].per_query["recall@5"].mean()
    # the category head started from the Task 1 heads given
    with pytest.raises(ValueError, match="category_state does not fit"):
        run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                      category_state={"heads.sub-99.1.weight": torch.zeros(20, 16)},
                      n_boot=10, bertscore_model=False, progress=False)


def test_shared_projection_trains_a_head_for_every_subject(small_data, random_clip):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"infonce": 1.0}, encoder_kwargs=ENCODER, shared_projection=True)
    run = run_retrieval(small_data, split, random_clip, config, TrainConfig(max_epochs=1, device="cpu"),
                        n_boot=10, bertscore_model=False, progress=False)
    assert run.fit.model.heads.shared is not None
    assert "shared projection" in run.label


def test_recording_normalisation_reaches_every_part_and_the_checkpoint_key(small_data, random_clip, tmp_path,
                                                                          normalizer_rows, recording_normalizer_rows):
    split = make_split(small_data.trials, "session")
    config = RetrievalConfig(lambdas={"infonce": 1.0}, encoder_kwargs=ENCODER, train_eeg_encoder=False)
    train = TrainConfig(max_epochs=1, device="cpu")
    run = run_retrieval(small_data, split, random_clip, config, train, tmp_path, n_boot=10, bertscore_model=False,
                        progress=False, normalization="recording")
    assert normalizer_rows == []  # no pooled training normaliser
    assert [len(rows) for rows in recording_normalizer_rows] == [len(split.train), len(split.val), len(split.test)]
    assert np.isfinite(run.test.per_query["recall@5"]).all()
    run_retrieval(small_data, split, random_clip, config, train, tmp_path, n_boot=10, bertscore_model=False,
                  progress=False)
    assert len(list(tmp_path.glob("retrieval_session_*.pt"))) == 2
