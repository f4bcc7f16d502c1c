"""Caption-retrieval metrics: hand-made similarities, cross-checks, chance levels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from eegkit.metrics import (
    caption_bank_index,
    cosine_similarity,
    per_class_map,
    retrieval_chance,
    retrieval_scores,
    summarize_retrieval,
)

# A bank of 6 captions: category "a" has 3, "b" has 2, "c" has 1.
BANK_IDS = np.array(["a0", "a1", "a2", "b0", "b1", "c0"], dtype=object)
BANK_CATS = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
CAT_OF = dict(zip(BANK_IDS, BANK_CATS))


def _naive_ap(relevant_in_rank_order: np.ndarray) -> float:
    """Mean over relevant items of precision at their rank (textbook definition)."""
    hits = np.flatnonzero(relevant_in_rank_order)
    return float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))


def _score(sim, query_ids, **kwargs) -> pd.DataFrame:
    query_ids = np.asarray(query_ids, dtype=object)
    cats = np.array([CAT_OF[q] for q in query_ids], dtype=object)
    return retrieval_scores(np.asarray(sim, dtype=float), query_ids, cats, BANK_IDS,
                            BANK_CATS, **kwargs)


# --- cosine similarity --------------------------------------------------------------


def test_cosine_similarity_normalises_and_accepts_float16_and_torch():
    rng = np.random.default_rng(0)
    q, b = rng.normal(size=(4, 8)), rng.normal(size=(5, 8))
    expected = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)).T
    assert np.allclose(cosine_similarity(q * 7.0, b), expected)
    half = cosine_similarity(q.astype(np.float16), b.astype(np.float16))
    assert half.dtype == np.float32 and half.shape == (4, 5)
    assert np.allclose(half, expected, atol=2e-3)
    from_torch = cosine_similarity(torch.tensor(q, dtype=torch.bfloat16),
                                   torch.tensor(b, dtype=torch.float32))
    assert isinstance(from_torch, np.ndarray)
    assert np.allclose(from_torch, expected, atol=2e-2)
    zero = cosine_similarity(np.zeros((1, 8)), b)
    assert np.array_equal(zero, np.zeros((1, 5)))


def test_cosine_similarity_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="queries have 3 dims but bank has 4"):
        cosine_similarity(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(n_rows, n_dims\)"):
        cosine_similarity(np.ones(3), np.ones((2, 3)))
    bad = np.ones((3, 2))
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="1 rows with NaN or inf .first: row 1"):
        cosine_similarity(bad, np.ones((2, 2)))


# --- hand-made rankings -------------------------------------------------------------


def test_perfect_ranking_scores_one():
    # Each query ranks its caption first, then its category's captions, then the rest.
    query_ids = list(BANK_IDS)
    sim = np.zeros((6, 6))
    for i, qid in enumerate(query_ids):
        sim[i] = np.where(BANK_CATS == CAT_OF[qid], 0.5, 0.0) - 0.01 * np.arange(6)
        sim[i, i] = 1.0
    per_query = _score(sim, query_ids)
    score_columns = [c for c in per_query if "recall@" in c] + ["ap", "class_ap"]
    assert (per_query[score_columns] == 1.0).all().all()
    assert (per_query["rank"] == 1).all()
    assert per_query["top1"].tolist() == list(range(6))
    table = summarize_retrieval(per_query, n_boot=50)
    assert np.allclose(table[["value", "ci_low", "ci_high"]], 1.0)


def test_reversed_ranking():
    # Query a0 ranks the bank in reverse: a0 last, a1 and a2 at ranks 5 and 4.
    sim = np.arange(6, 0, -1)[None, :].astype(float) * -1  # -6 (a0) ... -1 (c0)
    per_query = _score(sim, ["a0"], ks=(1, 3, 5, 6)).iloc[0]
    assert per_query["rank"] == 6
    assert per_query["top1"] == 5
    assert [per_query[f"recall@{k}"] for k in (1, 3, 5, 6)] == [0, 0, 0, 1]
    assert per_query["ap"] == pytest.approx(1 / 6)
    assert [per_query[f"class_recall@{k}"] for k in (1, 3, 5)] == [0, 0, 1]
    assert per_query["class_ap"] == pytest.approx((1 / 4 + 2 / 5 + 3 / 6) / 3)


def test_all_ties_score_exactly_chance():
    # A constant embedding: every similarity equal, so neither 0 % nor 100 %.
    rng = np.random.default_rng(1)
    n_bank = 40
    bank_ids = np.arange(n_bank)
    bank_cats = np.repeat(["x", "y", "z", "w"], [1, 4, 15, 20])
    truth = rng.integers(0, n_bank, 200)
    sim = cosine_similarity(np.ones((200, 16)), np.ones((n_bank, 16)))
    args = (truth, bank_cats[truth], bank_ids, bank_cats)
    per_query = retrieval_scores(sim, *args, ks=(1, 3, 5, 50))
    chance = retrieval_chance(*args, ks=(1, 3, 5, 50))
    for column, expected in chance.items():
        assert per_query[column].mean() == pytest.approx(expected, rel=1e-12), column
    assert per_query["recall@1"].mean() == pytest.approx(1 / n_bank, rel=1e-12)
    assert (per_query["recall@50"] == 1).all()
    assert (per_query["rank"] == (n_bank + 1) / 2).all()
    summary = summarize_retrieval(per_query, n_boot=50).set_index("column")
    assert np.allclose(summary["value"], summary["chance"], rtol=1e-12, atol=0)


def test_near_ties_from_float_rounding_count_as_ties():
    # float64 matmul of identical rows can differ in the last bit; those are ties.
    sim = np.full((1, 6), 0.3)
    sim[0, 2] += 1e-15
    tied = _score(sim, ["a0"])
    exact = _score(sim, ["a0"], tie_atol=0.0)
    assert tied["recall@1"].iloc[0] == pytest.approx(1 / 6)
    assert exact["recall@1"].iloc[0] == 0.0


def test_partial_ties_equal_mean_over_all_tie_orders():
    # Enumerate every order of the bank consistent with the similarities: each is
    # equally likely under random tie-breaking, so their mean is the expected score.
    sim = np.array([[0.9, 0.5, 0.5, 0.5, 0.2, 0.2],   # a1 tied with a2, b0 (ranks 2-4)
                    [0.5, 0.5, 0.9, 0.5, 0.5, 0.1],   # a1 in a group of 4 (ranks 2-5)
                    [0.3, 0.3, 0.3, 0.3, 0.3, 0.3]])  # all tied
    query_ids = ["a1", "a1", "b0"]
    per_query = _score(sim, query_ids, ks=(1, 2, 3, 4))
    for i, qid in enumerate(query_ids):
        exact = BANK_IDS == qid
        same_class = BANK_CATS == CAT_OF[qid]
        totals = {}
        orders = [o for o in itertools.permutations(range(6))
                  if np.all(np.diff(sim[i, list(o)]) <= 0)]
        for o in orders:
            o = list(o)
            for name, relevant in (("", exact), ("class_", same_class)):
                for k in (1, 2, 3, 4):
                    key = f"{name}recall@{k}"
                    totals[key] = totals.get(key, 0) + relevant[o][:k].any()
                key = f"{name}ap"
                totals[key] = totals.get(key, 0) + _naive_ap(relevant[o])
        for key, total in totals.items():
            expected = total / len(orders)
            got = per_query[key].iloc[i]
            assert got == pytest.approx(expected, rel=1e-12), (i, key)


def test_single_caption_category_class_equals_instance():
    rng = np.random.default_rng(2)
    sim = rng.normal(size=(2, 6))
    per_query = _score(sim, ["c0", "a0"])
    for k in (1, 3, 5):
        first = per_query.iloc[0]
        assert first[f"class_recall@{k}"] == first[f"recall@{k}"]
    assert per_query["class_ap"].iloc[0] == per_query["ap"].iloc[0]
    assert per_query["n_class_captions"].tolist() == [1, 3]
    # For the three-caption category the two differ (guards the check above).
    assert per_query["class_ap"].iloc[1] != per_query["ap"].iloc[1]


def test_duplicate_query_captions_are_scored_independently():
    sim = np.array([[0.9, 0.1, 0.2, 0.3, 0.4, 0.5],
                    [0.1, 0.2, 0.3, 0.4, 0.5, 0.9],
                    [0.1, 0.9, 0.2, 0.3, 0.4, 0.5]])
    query_ids = ["a0", "a0", "a1"]
    per_query = _score(sim, query_ids)
    assert per_query["rank"].tolist() == [1, 6, 1]
    assert per_query["ap"].tolist() == pytest.approx([1, 1 / 6, 1])
    assert per_query["caption_id"].tolist() == query_ids
    table = per_class_map(per_query)
    assert table["category"].tolist() == ["a"]
    assert table["n_queries"].tolist() == [3]
    assert table["map"].iloc[0] == pytest.approx((1 + 1 / 6 + 1) / 3)
    assert table["chance"].iloc[0] == pytest.approx(sum(1 / r for r in range(1, 7)) / 6)


def test_per_class_map_sorts_and_averages():
    rng = np.random.default_rng(3)
    query_ids = ["c0", "b1", "a2", "b0", "a0"]
    per_query = _score(rng.normal(size=(5, 6)), query_ids)
    table = per_class_map(per_query, column="class_ap")
    assert table["category"].tolist() == ["a", "b", "c"]
    assert table["n_queries"].tolist() == [2, 2, 1]
    expected = per_query.groupby("category")["class_ap"].mean().to_numpy()
    assert np.allclose(table["map"], expected)
    with pytest.raises(ValueError, match=r"column='recall@1': choose one of \['ap', 'class_ap'\]"):
        per_class_map(per_query, column="recall@1")


# --- cross-checks against scikit-learn and torchmetrics ------------------------------


def _random_untied(seed=4, n_queries=30, n_bank=25, n_cats=5):
    rng = np.random.default_rng(seed)
    bank_cats = rng.integers(0, n_cats, n_bank)
    truth = rng.integers(0, n_bank, n_queries)
    sim = rng.normal(size=(n_queries, n_bank))
    per_query = retrieval_scores(sim, truth, bank_cats[truth], np.arange(n_bank),
                                 bank_cats, ks=(1, 3, 5, 10))
    exact = truth[:, None] == np.arange(n_bank)
    same_class = bank_cats[truth][:, None] == bank_cats
    return sim, exact, same_class, per_query


def test_ap_matches_sklearn_on_untied_scores():
    from sklearn.metrics import average_precision_score

    sim, exact, same_class, per_query = _random_untied()
    sk_ap = [average_precision_score(e, s) for e, s in zip(exact, sim)]
    sk_class_ap = [average_precision_score(c, s) for c, s in zip(same_class, sim)]
    assert np.allclose(per_query["ap"], sk_ap, rtol=1e-12)
    assert np.allclose(per_query["class_ap"], sk_class_ap, rtol=1e-12)
    assert np.allclose(per_query["ap"], 1 / per_query["rank"], rtol=1e-12)
    assert per_query["class_ap"].nunique() > 10  # not a degenerate case


def test_recall_and_map_match_torchmetrics():
    from torchmetrics.retrieval import RetrievalHitRate, RetrievalMAP, RetrievalRecall

    sim, exact, same_class, per_query = _random_untied(seed=5)
    n_queries, n_bank = sim.shape
    # torchmetrics' AP drops items scored <= 0 as not retrieved; shift the scores
    # (same ranking) so that every caption counts, as in our definition.
    preds = torch.tensor(sim - sim.min() + 1).flatten()
    indexes = torch.arange(n_queries).repeat_interleave(n_bank)
    exact_t = torch.tensor(exact).flatten()
    class_t = torch.tensor(same_class).flatten()
    for k in (1, 3, 5, 10):
        # One relevant caption: recall@k (share of relevant found) is the hit rate.
        recall = RetrievalRecall(top_k=k)(preds, exact_t, indexes=indexes)
        assert per_query[f"recall@{k}"].mean() == pytest.approx(recall.item(), rel=1e-6)
        # Several relevant captions: class-aware recall is "any found", the hit rate.
        hit = RetrievalHitRate(top_k=k)(preds, class_t, indexes=indexes)
        class_recall = per_query[f"class_recall@{k}"].mean()
        assert class_recall == pytest.approx(hit.item(), rel=1e-6)
    assert per_query["ap"].mean() == pytest.approx(
        RetrievalMAP()(preds, exact_t, indexes=indexes).item(), rel=1e-6)
    assert per_query["class_ap"].mean() == pytest.approx(
        RetrievalMAP()(preds, class_t, indexes=indexes).item(), rel=1e-6)


# --- chance levels ------------------------------------------------------------------


def test_chance_formulas_match_monte_carlo_and_enumeration():
    n_bank, n_sim = 12, 40_000
    rng = np.random.default_rng(6)
    harmonic = sum(1 / i for i in range(1, n_bank + 1))
    for m in (1, 3, 7, 12):
        bank_cats = np.array(["q"] * m + ["o"] * (n_bank - m), dtype=object)
        chance = retrieval_chance([0], ["q"], np.arange(n_bank), bank_cats,
                                  ks=(1, 3, 5))
        # Random rankings: positions of the m relevant captions.
        ranked = rng.permuted(np.tile(np.arange(n_bank) < m, (n_sim, 1)), axis=1)
        positions = np.sort(np.argsort(~ranked, axis=1, kind="stable")[:, :m], axis=1)
        ap = np.mean(np.arange(1, m + 1) / (positions + 1), axis=1)
        se = ap.std() / math.sqrt(n_sim)
        assert abs(chance["class_ap"] - ap.mean()) < 4 * se + 1e-12, m
        for k in (1, 3, 5):
            hit = ranked[:, :k].any(axis=1)
            expected = 1 - math.comb(n_bank - m, k) / math.comb(n_bank, k)
            assert chance[f"class_recall@{k}"] == pytest.approx(expected, rel=1e-12)
            assert abs(expected - hit.mean()) < 4 * hit.std() / math.sqrt(n_sim) + 1e-12
            assert chance[f"recall@{k}"] == pytest.approx(k / n_bank, rel=1e-12)
        assert chance["ap"] == pytest.approx(harmonic / n_bank, rel=1e-12)
        # Exact: every set of relevant positions is equally likely.
        exact = np.mean([np.mean(np.arange(1, m + 1) / (np.array(p) + 1))
                         for p in itertools.combinations(range(n_bank), m)])
        assert chance["class_ap"] == pytest.approx(exact, rel=1e-12), m
    assert chance["class_ap"] == pytest.approx(1.0)  # m = n_bank: everything relevant


def test_chance_averages_over_queries_with_their_category():
    chance = retrieval_chance(["a0", "c0"], ["a", "c"], BANK_IDS, BANK_CATS, ks=(1,))
    assert chance["recall@1"] == pytest.approx(1 / 6)
    assert chance["class_recall@1"] == pytest.approx((3 / 6 + 1 / 6) / 2)


# --- summary ------------------------------------------------------------------------


def test_summarize_retrieval_rows_ci_and_chance():
    rng = np.random.default_rng(7)
    query_ids = rng.choice(BANK_IDS, 60)
    per_query = _score(rng.normal(size=(60, 6)), query_ids)
    table = summarize_retrieval(per_query, n_boot=200, seed=1)
    assert table["metric"].tolist() == [
        "Recall@1 (instance)", "Recall@3 (instance)", "Recall@5 (instance)",
        "Recall@1 (class-aware)", "Recall@3 (class-aware)", "Recall@5 (class-aware)",
        "MAP (instance)", "MAP (class-aware)"]
    assert np.allclose(table["value"], per_query[table["column"]].mean().to_numpy())
    assert (table["ci_low"] < table["value"]).all()
    assert (table["value"] < table["ci_high"]).all()
    query_cats = [CAT_OF[q] for q in query_ids]
    chance = retrieval_chance(query_ids, query_cats, BANK_IDS, BANK_CATS)
    assert np.allclose(table["chance"], [chance[c] for c in table["column"]])
    assert (table["n_queries"] == 60).all()
    with pytest.raises(ValueError, match="build it with retrieval_scores"):
        summarize_retrieval(per_query.drop(columns=["n_bank"]))


# --- input validation ---------------------------------------------------------------


def test_retrieval_scores_rejects_bad_input():
    sim = np.zeros((2, 6))
    with pytest.raises(ValueError, match=r"2 of 2 queries have a caption id that is "
                                         r"not in the bank \(e.g. 'zz'\)"):
        retrieval_scores(sim, ["zz", "yy"], ["a", "a"], BANK_IDS, BANK_CATS)
    with pytest.raises(ValueError, match="query_caption_ids=2, query_categories=3"):
        retrieval_scores(sim, ["a0", "a1"], ["a", "a", "a"], BANK_IDS, BANK_CATS)
    with pytest.raises(ValueError, match="bank_caption_ids=6, bank_categories=5"):
        retrieval_scores(sim, ["a0", "a1"], ["a", "a"], BANK_IDS, BANK_CATS[:5])
    with pytest.raises(ValueError, match=r"sim has shape \(2, 5\) but there are 2 "
                                         r"queries and 6 bank captions"):
        retrieval_scores(sim[:, :5], ["a0", "a1"], ["a", "a"], BANK_IDS, BANK_CATS)
    with pytest.raises(ValueError, match="1 repeated ids .e.g. 'a0'"):
        retrieval_scores(sim, ["a0", "a1"], ["a", "a"], np.r_[BANK_IDS[:5], ["a0"]],
                         BANK_CATS)
    with pytest.raises(ValueError, match="1 queries have a category other than"):
        retrieval_scores(sim, ["a0", "a1"], ["a", "b"], BANK_IDS, BANK_CATS)
    nan_sim = sim.copy()
    nan_sim[0, 0] = np.nan
    with pytest.raises(ValueError, match="sim has 1 NaN or inf"):
        retrieval_scores(nan_sim, ["a0", "a1"], ["a", "a"], BANK_IDS, BANK_CATS)
    with pytest.raises(ValueError, match="ks must be positive"):
        retrieval_scores(sim, ["a0", "a1"], ["a", "a"], BANK_IDS, BANK_CATS, ks=(0, 1))


def test_chunking_does_not_change_scores():
    rng = np.random.default_rng(8)
    query_ids = rng.choice(BANK_IDS, 23)
    sim = np.round(rng.normal(size=(23, 6)), 1)  # rounding makes ties
    whole = _score(sim, query_ids)
    chunked = _score(sim, query_ids, chunk_size=4)
    pd.testing.assert_frame_equal(whole, chunked)


# --- BERTScore ----------------------------------------------------------------------


# --- CLIPScore ----------------------------------------------------------------------


def test_caption_bank_index():
    assert caption_bank_index(["b0", "a0", "b0"], BANK_IDS).tolist() == [3, 0, 3]


