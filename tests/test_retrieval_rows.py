"""Table rows of Task 2B's ablation tables come from the result objects (notebook 05)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from eegkit.retrieval.evaluate import (
    CEILING_QUERIES,
    CHANCE_QUERIES,
    LABEL_COLUMNS,
    ablation_table,
    chance_row,
    rank_captions,
    reference_labels,
    reference_row,
    scores_row,
)
from eegkit.retrieval.runner import RetrievalConfig, RetrievalRun


@pytest.fixture(scope="module")
def ranked():
    """12 queries ranking a bank of 6 captions (2 categories), with every score."""
    rng = np.random.default_rng(0)
    bank = pd.DataFrame({"caption_id": np.arange(6), "category": np.repeat(["cat", "dog"], 3),
                         "caption": [f"caption {i}" for i in range(6)]})
    truth = np.tile(np.arange(6), 2)
    queries = bank.iloc[truth].reset_index(drop=True)
    bank_emb = rng.normal(size=(6, 8))
    query_emb = bank_emb[truth] + rng.normal(size=(12, 8))
    return rank_captions(query_emb, bank_emb, queries, bank, n_boot=20, seed=0, bertscore_model=False)


def test_table_row_is_the_labelled_scores_then_the_text_scores(ranked):
    row = ranked.table_row("images (twin CLIP)")
    expected = {**scores_row(ranked.scores, **reference_labels("images (twin CLIP)", "session")),
                **ranked.text_row()}
    assert row == expected
    assert list(row) == list(expected)  # same column order in the tables
    assert [row[c] for c in LABEL_COLUMNS] == ["images (twin CLIP)", "-", "-", "-", "session"]
    assert row["Recall@5 (instance)"] == ranked.scores.set_index("metric").loc["Recall@5 (instance)", "value"]
    assert {"BLEU-4", "CLIPScore AUC"} <= set(row)
    assert ranked.table_row("x", "cross_subject")["protocol"] == "cross_subject"


def test_chance_row_labels_the_chance_levels(ranked):
    row = ranked.chance_row("cross_subject")
    assert row == chance_row(ranked.scores, **reference_labels("chance (random ranking)", "cross_subject"))
    assert row["queries"] == CHANCE_QUERIES
    assert row["Recall@5 (instance)"] == pytest.approx(5 / 6)
    assert row["CLIPScore AUC"] == 0.5


def test_reference_row_of_a_bare_score_table(ranked):
    row = reference_row(ranked.scores, CEILING_QUERIES)
    assert row == scores_row(ranked.scores, **reference_labels(CEILING_QUERIES, "session"))
    assert "BLEU-4" not in row  # no ranking, no text scores


def test_rows_need_the_summary_scores():
    bank = pd.DataFrame({"caption_id": [0, 1], "category": ["cat", "dog"], "caption": ["a", "b"]})
    ranked = rank_captions(np.eye(2), np.eye(2), bank, bank, n_boot=None)
    with pytest.raises(ValueError, match="n_boot=None"):
        ranked.table_row("images")
    with pytest.raises(ValueError, match="n_boot=None"):
        ranked.chance_row()


def test_run_rows_mark_the_chosen_configuration_and_give_their_chance_row(ranked):
    fit = SimpleNamespace(history=pd.DataFrame({"seconds": [1.0, 3.0]}), best_epoch=1, reused_epochs=0)
    run = RetrievalRun(config=RetrievalConfig(lambdas={"infonce": 1.0}), protocol="cross_subject", fit=fit,
                       test=ranked, n_trainable={"eeg": 10, "text": 0}, peak_memory_mb=1.0)
    plain = run.summary_row()
    chosen = run.summary_row(chosen_on_validation=True)
    assert "chosen on validation" not in plain
    assert chosen == {**plain, "chosen on validation": True}
    assert list(chosen)[-1] == "chosen on validation"  # last, as the dict merge it replaces
    assert run.summary_row(chosen_on_validation=False)["chosen on validation"] is False
    assert run.chance_row() == ranked.chance_row("cross_subject")
    assert plain["seconds per epoch"] == 2.0

    table = ablation_table([ranked.table_row("images"), chosen, run.chance_row()])
    assert list(table.columns[:len(LABEL_COLUMNS)]) == list(LABEL_COLUMNS)
    assert list(table["queries"]) == ["images", "EEG", CHANCE_QUERIES]
    assert bool(table["chosen on validation"].iloc[1])
