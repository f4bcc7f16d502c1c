"""Task 2B's reference rankers: classify-then-retrieve and the ridge linear map."""

from __future__ import annotations

import numpy as np
import pytest

from eegkit import CATEGORIES
from eegkit.data.splits import make_split
from eegkit.retrieval import references
from eegkit.retrieval.clip import caption_bank


def test_classify_then_retrieve_ties_the_captions_of_a_category(small_data):
    rows = small_data.trials.iloc[make_split(small_data.trials, "session").test]
    certain = np.full((len(rows), len(CATEGORIES)), -50.0)
    certain[np.arange(len(rows)), rows["category_id"].to_numpy()] = 0.0  # always the right category
    ranked = references.classify_then_retrieve(certain, rows, n_boot=20, bertscore_model=False)
    per_query = ranked.per_query
    assert (per_query["class_recall@1"] == 1).all()
    bank = caption_bank(rows)
    n_in_category = rows["category"].map(bank["category"].value_counts()).to_numpy()
    # instance Recall@1 is the expected value of a random pick among the tied captions
    np.testing.assert_allclose(per_query["recall@1"], 1 / n_in_category)
    assert ranked.bleu is not None and ranked.matched is None  # no embeddings, no CLIPScore
    with pytest.raises(ValueError, match="rows of log_proba"):
        references.classify_then_retrieve(certain[:-1], rows)


def test_linear_map_is_fitted_on_the_training_split_and_chosen_on_validation(small_data, random_clip,
                                                                           monkeypatch):
    split = make_split(small_data.trials, "session")
    fitted = []
    original = references.Ridge.fit
    monkeypatch.setattr(references.Ridge, "fit", lambda self, X, y: fitted.append(len(X)) or original(self, X, y))
    scaled = []
    from eegkit.models.classical import SubjectStandardizer

    original_scaler = SubjectStandardizer.fit.__func__
    monkeypatch.setattr(SubjectStandardizer, "fit", classmethod(
        lambda cls, features, subject: scaled.append(len(features)) or original_scaler(cls, features, subject)))
    linear = references.linear_map_retrieval(small_data, split, random_clip, alphas=(1.0, 1e3), n_boot=20,
                                             bertscore_model=False)
    assert fitted == [len(split.train)] * 2 and scaled == [len(split.train)]
    assert linear.alpha in (1.0, 1e3) and list(linear.validation["alpha"]) == [1.0, 1e3]
    # the strength with the best validation selection score (the three metrics the rows are judged on)
    scores = linear.validation.set_index("alpha")[["recall@5", "class_recall@1", "ap"]].sum(axis=1)
    assert linear.alpha == scores.idxmax()
    assert len(linear.test.per_query) == len(split.test)
    assert {"Recall@5 (instance)", "Recall@1 (class-aware)"} <= set(linear.test.scores["metric"])
    assert linear.test.matched is not None


def test_within_category_scores_are_chance_for_classify_then_retrieve_and_one_for_a_perfect_ranker(small_data):
    from eegkit.retrieval.evaluate import rank_by_scores, within_category

    rows = small_data.trials.iloc[make_split(small_data.trials, "session").test]
    rng = np.random.default_rng(0)
    guesses = rng.normal(size=(len(rows), len(CATEGORIES)))  # any category posterior
    table = within_category(references.classify_then_retrieve(guesses, rows, n_boot=20, bertscore_model=False),
                            n_boot=20).set_index("metric")
    assert not any("class-aware" in metric for metric in table.index)
    np.testing.assert_allclose(table["value"], table["chance"])  # captions of a category tie
    bank = caption_bank(rows)
    perfect = (rows["caption_id"].to_numpy()[:, None] == bank["caption_id"].to_numpy()[None, :]).astype(float)
    # the perfect ranker also puts other categories first: within its category it is still perfect
    perfect -= 2 * (rows["category"].to_numpy()[:, None] == bank["category"].to_numpy()[None, :])
    ranked = rank_by_scores(perfect, rows.reset_index(drop=True), bank, n_boot=None)
    assert ranked.per_query["recall@1"].max() < 1
    table = within_category(ranked, n_boot=20).set_index("metric")
    np.testing.assert_allclose(table.loc[["Recall@1 (instance)", "MAP (instance)"], "value"], 1.0)
    assert table.loc["Recall@1 (instance)", "chance"] < 1


def test_selection_score_sums_the_three_judged_metrics_and_names_what_is_missing():
    from eegkit.retrieval.evaluate import selection_score

    judged = {"recall@5": 0.07, "class_recall@1": 0.27, "ap": 0.06}
    assert selection_score(judged) == pytest.approx(0.40)
    # class-aware Recall@5 (which rewards five categories in the top five) does not count
    assert selection_score({**judged, "class_recall@5": 0.9}) == selection_score(judged)
    with pytest.raises(KeyError, match="missing \\['ap'\\]"):
        selection_score({"recall@5": 0.07, "class_recall@1": 0.27})


def test_versus_references_compares_the_chosen_row_with_each_reference_metric_by_metric():
    import pandas as pd

    from eegkit.retrieval.evaluate import TARGET_METRICS, versus_references

    def row(queries, r5, c1, ap, chosen=None):
        return {"queries": queries, "Recall@5 (instance)": r5, "Recall@1 (class-aware)": c1,
                "MAP (instance)": ap, "Recall@5 (instance) CI": "0.1-0.2", "chosen on validation": chosen}

    table = pd.DataFrame([row("classify-then-retrieve (LDA)", 0.067, 0.262, 0.058),
                          row("linear map (ridge, alpha 100)", 0.016, 0.058, 0.020),
                          row("EEG", 0.030, 0.300, 0.010, chosen=False),
                          row("EEG", 0.069, 0.273, 0.058, chosen=True),
                          row("chance (random ranking)", 0.013, 0.050, 0.017)])
    versus = versus_references(table).set_index("metric")
    assert list(versus.index) == list(TARGET_METRICS)
    assert versus.loc["Recall@5 (instance)", "chosen"] == 0.069
    assert versus.loc["Recall@5 (instance)", "chosen CI"] == "0.1-0.2"
    assert versus.loc["Recall@1 (class-aware)", "classify-then-retrieve (LDA)"] == 0.262
    assert versus.loc["MAP (instance)", "chance"] == 0.017
    # strictly above each reference: a tie with classify-then-retrieve is not a win
    assert list(versus["above every reference"]) == [True, True, False]
    with pytest.raises(ValueError, match="exactly one row"):
        versus_references(table.assign(**{"chosen on validation": True}))
    with pytest.raises(ValueError, match="'linear map', found 0"):
        versus_references(table.drop(index=1))
