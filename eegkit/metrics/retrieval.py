"""Caption retrieval scores: Recall@K and MAP, instance-level and class-aware, with exact chance.

Queries (images or EEG trials) are ranked by cosine similarity against a caption
bank, the unique captions of the evaluated split. Each query has one true caption
(several queries may share it) and a category; each bank caption has an id and a
category. Instance-level scores count only the exact caption as relevant,
class-aware scores count every bank caption of the query's category.

Ties. A model that outputs a constant embedding gives equal similarities and must
score exactly chance, so every score is its expected value when tied captions are
ordered uniformly at random: a tie group straddling rank k gives a hypergeometric
hit probability, and average precision uses the exact expectation below (each
relevant caption at position p of a group of n_group, uniform over p, with the
other relevant captions of the group spread hypergeometrically before it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eegkit._checks import check_option
from eegkit.metrics.classification import bootstrap_ci

RETRIEVAL_KS = (1, 3, 5)


def _as_float_matrix(x, name: str) -> np.ndarray:
    """A 2-D float array (float32, or float64 if given) from numpy or torch input."""
    if hasattr(x, "detach"):  # torch tensor: bfloat16/float16 have no numpy twin
        x = x.detach().cpu()
        x = x.double() if str(x.dtype) == "torch.float64" else x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n_rows, n_dims), got shape "
                         f"{x.shape}; stack the embeddings into one 2-D array.")
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} rows with NaN or inf (first: "
                         f"row {int(np.flatnonzero(bad)[0])}); fix or drop them before "
                         f"scoring.")
    return x


def _l2_normalize(x, name: str) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero (cosine 0 with all)."""
    x = _as_float_matrix(x, name)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.finfo(x.dtype).tiny)


def cosine_similarity(queries, bank) -> np.ndarray:
    """Cosine similarity of every query with every bank entry.

    Parameters
    ----------
    queries : ndarray or Tensor, shape (n_queries, n_dims)
        float16, float32 or float64; torch tensors are moved to the CPU.
    bank : ndarray or Tensor, shape (n_bank, n_dims)

    Returns
    -------
    sim : ndarray, shape (n_queries, n_bank)
        float32 (float64 if an input is float64), in [-1, 1]. A zero row gives 0.
    """
    q = _l2_normalize(queries, "queries")
    b = _l2_normalize(bank, "bank")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dims but bank has {b.shape[1]}; "
                         f"embed both with the same model or project them to one "
                         f"space.")
    return q @ b.T


def caption_bank_index(query_caption_ids, bank_caption_ids) -> np.ndarray:
    """Position in the bank of each query's true caption.

    Parameters
    ----------
    query_caption_ids : array-like, shape (n_queries,)
    bank_caption_ids : array-like, shape (n_bank,)
        Unique ids.

    Returns
    -------
    index : ndarray of int, shape (n_queries,)
    """
    bank = pd.Index(np.asarray(bank_caption_ids, dtype=object))
    if bank.has_duplicates:
        dup = bank[bank.duplicated()].unique()
        raise ValueError(f"bank_caption_ids has {len(dup)} repeated ids (e.g. "
                         f"{dup[0]!r}); the bank must hold each caption once, e.g. "
                         f"pd.unique(caption_ids).")
    index = bank.get_indexer(np.asarray(query_caption_ids, dtype=object))
    missing = index < 0
    if missing.any():
        example = np.asarray(query_caption_ids, dtype=object)[missing][0]
        raise ValueError(f"{int(missing.sum())} of {len(index)} queries have a caption "
                         f"id that is not in the bank (e.g. {example!r}); build the "
                         f"bank from the captions of the same split as the queries.")
    return index


def _check_lengths(**arrays) -> None:
    """Raise if the named 1-D inputs differ in length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"lengths differ: {listed}; pass one entry per query (or per "
                         f"bank caption) in each.")


def _retrieval_targets(query_caption_ids, query_categories, bank_caption_ids,
                       bank_categories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked true bank index and category codes of the queries and the bank.

    Returns
    -------
    true_index : ndarray of int, shape (n_queries,)
    query_codes : ndarray of int, shape (n_queries,)
    bank_codes : ndarray of int, shape (n_bank,)
    """
    query_categories = np.asarray(query_categories, dtype=object)
    bank_categories = np.asarray(bank_categories, dtype=object)
    _check_lengths(query_caption_ids=query_caption_ids,
                   query_categories=query_categories)
    _check_lengths(bank_caption_ids=bank_caption_ids, bank_categories=bank_categories)
    if len(query_categories) == 0 or len(bank_categories) == 0:
        raise ValueError(f"need at least one query and one bank caption, got "
                         f"{len(query_categories)} queries and {len(bank_categories)} "
                         f"bank captions.")
    true_index = caption_bank_index(query_caption_ids, bank_caption_ids)
    bank_codes, _ = pd.factorize(pd.Series(bank_categories, dtype=object))
    disagree = bank_categories[true_index] != query_categories
    if disagree.any():
        i = int(np.flatnonzero(disagree)[0])
        raise ValueError(f"{int(disagree.sum())} queries have a category other than "
                         f"the bank's category of their caption (e.g. query {i}: "
                         f"{query_categories[i]!r} vs "
                         f"{bank_categories[true_index[i]]!r}); take both categories "
                         f"from the same caption table.")
    return true_index, bank_codes[true_index], bank_codes


def _harmonic(n: int) -> np.ndarray:
    """H[0..n], H[i] = 1 + 1/2 + ... + 1/i."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def _miss_probability(n, n_relevant, n_drawn) -> np.ndarray:
    """C(n - r, s) / C(n, s): chance that ``s`` draws from ``n`` miss ``r`` relevant.

    Evaluated as the product of (n - r - i) / (n - i) over i < s, exact for the small
    ``s`` (at most k) of recall@k.
    """
    n, r, s = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                    for a in (n, n_relevant, n_drawn)))
    p = np.ones(n.shape)
    for i in range(int(s.max(initial=0))):
        active = i < s
        factor = np.maximum(n - r - i, 0) / np.where(active, n - i, 1)
        p = np.where(active, p * factor, p)
    return p


def _expected_precision(above, n_group_relevant, start, size, harmonic):
    """Expected precision at a relevant caption of a tie group, ties ordered at random.

    The group holds ``size`` captions at 0-based ranks ``start`` to
    ``start + size - 1``, ``n_group_relevant`` (r) of them relevant; ``above``
    relevant captions rank higher. With position p uniform on 1..size and
    (p - 1)(r - 1)/(size - 1) other relevant captions expected before it, the mean of
    (above + 1 + ...)/(start + p) over p needs only H(start + size) - H(start), with
    H the harmonic numbers.
    """
    d_h = harmonic[start + size] - harmonic[start]
    same = np.where(size > 1, (n_group_relevant - 1) / np.maximum(size - 1, 1)
                    * (size - (start + 1) * d_h), 0.0)
    return ((above + 1) * d_h + same) / size


def _expected_random_ap(n_relevant, n_bank) -> np.ndarray:
    """Expected AP of a uniformly random ranking with ``n_relevant`` among ``n_bank``.

    (H_N + (R - 1)/(N - 1) (N - H_N)) / N, with H_N the N-th harmonic number
    (Bestgen 2015): one tie group holding the whole bank.
    """
    n_bank = np.asarray(n_bank, dtype=int)
    harmonic = _harmonic(n_bank.max())
    return _expected_precision(0, np.asarray(n_relevant), 0, n_bank, harmonic)


def _tie_groups(sim: np.ndarray, tie_atol: float) -> tuple[np.ndarray, ...]:
    """Sort rows by descending similarity and find each position's tie group.

    Returns
    -------
    order : ndarray of int, shape (n_queries, n_bank)
        Bank indices, most similar first (in any order within a group).
    start, end : ndarray of int, shape (n_queries, n_bank)
        0-based first position and one past the last position of the group.
    """
    order = np.argsort(-sim, axis=1)  # 5x faster than stable; groups ignore order
    ranked = np.take_along_axis(sim, order, axis=1)
    n_bank = sim.shape[1]
    positions = np.arange(n_bank)
    new = np.ones(ranked.shape, dtype=bool)
    new[:, 1:] = (ranked[:, :-1] - ranked[:, 1:]) > tie_atol
    last = np.ones_like(new)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, positions, 0), axis=1)
    stop = np.where(last, positions + 1, n_bank)
    end = np.minimum.accumulate(stop[:, ::-1], axis=1)[:, ::-1]
    return order, start, end


def _expected_hits_and_ap(relevant, start, end, ks, harmonic):
    """Expected hit@k for each k and expected AP, from relevance in ranked order.

    Parameters
    ----------
    relevant : ndarray of bool, shape (n_queries, n_bank)
        Relevance of the caption at each ranked position; at least one per row.
    start, end : ndarray of int, shape (n_queries, n_bank)
        Tie groups from :func:`_tie_groups`.
    """
    n_queries, n_bank = relevant.shape
    rows = np.arange(n_queries)
    # n_above[:, j]: relevant captions at positions before j
    n_above = np.zeros((n_queries, n_bank + 1), dtype=np.int64)
    np.cumsum(relevant, axis=1, out=n_above[:, 1:])
    hits = {}
    for k in ks:
        first, stop = start[:, min(k, n_bank) - 1], end[:, min(k, n_bank) - 1]
        above = n_above[rows, first]
        miss = _miss_probability(stop - first, n_above[rows, stop] - above,
                                 min(k, n_bank) - first)
        hits[k] = np.where(above > 0, 1.0, 1.0 - miss)
    row, position = np.nonzero(relevant)
    first, stop = start[row, position], end[row, position]
    above = n_above[row, first]
    precision = _expected_precision(above, n_above[row, stop] - above, first,
                                    stop - first, harmonic)
    ap = np.bincount(row, weights=precision, minlength=n_queries) / n_above[:, -1]
    return hits, ap


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}; e.g. ks=(1, 3, 5).")
    return ks


def retrieval_scores(sim, query_caption_ids, query_categories, bank_caption_ids,
                     bank_categories, ks=RETRIEVAL_KS, *, tie_atol: float = 1e-6,
                     chunk_size: int = 256) -> pd.DataFrame:
    """Per-query instance-level and class-aware recall@k and average precision.

    Every score is its expected value when captions with equal similarity are ordered
    uniformly at random, so a constant embedding scores exactly chance (see
    :func:`retrieval_chance`). Without ties ``ap`` equals ``1 / rank``.

    Parameters
    ----------
    sim : ndarray, shape (n_queries, n_bank)
        Similarity of each query with each bank caption, e.g. from
        :func:`cosine_similarity`.
    query_caption_ids : array-like, shape (n_queries,)
        True caption of each query; several queries may share one.
    query_categories : array-like, shape (n_queries,)
    bank_caption_ids : array-like, shape (n_bank,)
        Unique caption ids; every query's caption must be among them.
    bank_categories : array-like, shape (n_bank,)
    ks : tuple of int, default=(1, 3, 5)
        Cut-offs; a k above n_bank counts the whole bank.
    tie_atol : float, default=1e-6
        Similarities closer than this (chained along the ranking) are tied. The default
        absorbs float32 rounding: the same dot product computed in two matmul blocks can
        differ in the last bits. Use 0 for exact equality only.
    chunk_size : int, default=256
        Queries ranked at once; memory is O(chunk_size * n_bank) (about 100 MB for
        256 x 4,000), time O(n_queries * n_bank * log n_bank).

    Returns
    -------
    per_query : DataFrame
        One row per query: ``caption_id``, ``category``, ``rank`` (1-based rank of the
        true caption, the mean rank within a tie), ``top1`` (bank index of the most
        similar caption, the lowest index among equals), ``recall@k`` (the exact caption
        within the top k), ``class_recall@k`` (any caption of the category within the
        top k), ``ap`` (average precision with only the exact caption relevant),
        ``class_ap`` (every bank caption of the category relevant), ``n_bank`` and
        ``n_class_captions`` (bank captions of the query's category), which fix the
        chance levels.

    References
    ----------
    Bestgen, Y. (2015). Exact expected average precision of the random baseline for
    system evaluation. The Prague Bulletin of Mathematical Linguistics, 103, 131-138.
    """
    sim = np.asarray(sim)
    ks = _check_ks(ks)
    true_index, query_codes, bank_codes = _retrieval_targets(
        query_caption_ids, query_categories, bank_caption_ids, bank_categories)
    expected = (len(true_index), len(bank_codes))
    if sim.shape != expected:
        raise ValueError(f"sim has shape {sim.shape} but there are {expected[0]} "
                         f"queries and {expected[1]} bank captions; pass sim of shape "
                         f"(n_queries, n_bank) = {expected}.")
    if not np.isfinite(sim).all():
        raise ValueError(f"sim has {int((~np.isfinite(sim)).sum())} NaN or inf values; "
                         f"check the embeddings (cosine_similarity rejects them).")
    if tie_atol < 0 or chunk_size < 1:
        raise ValueError(f"need tie_atol >= 0 and chunk_size >= 1, got {tie_atol=}, "
                         f"{chunk_size=}.")
    harmonic = _harmonic(expected[1])
    parts = []
    for lo in range(0, expected[0], chunk_size):
        chunk = slice(lo, lo + chunk_size)
        order, start, end = _tie_groups(sim[chunk], tie_atol)
        exact = order == true_index[chunk, None]
        same_class = bank_codes[order] == query_codes[chunk, None]
        hits, ap = _expected_hits_and_ap(exact, start, end, ks, harmonic)
        class_hits, class_ap = _expected_hits_and_ap(same_class, start, end, ks,
                                                     harmonic)
        position = exact.argmax(axis=1)[:, None]
        first = np.take_along_axis(start, position, axis=1)[:, 0]
        last = np.take_along_axis(end, position, axis=1)[:, 0]
        parts.append(pd.DataFrame({
            "rank": first + (last - first + 1) / 2, "top1": sim[chunk].argmax(axis=1),
            **{f"recall@{k}": hits[k] for k in ks},
            **{f"class_recall@{k}": class_hits[k] for k in ks},
            "ap": ap, "class_ap": class_ap}))
    per_query = pd.concat(parts, ignore_index=True)
    per_query.insert(0, "caption_id", np.asarray(query_caption_ids, dtype=object))
    per_query.insert(1, "category", np.asarray(query_categories, dtype=object))
    per_query["n_bank"] = expected[1]
    per_query["n_class_captions"] = np.bincount(bank_codes)[query_codes]
    return per_query


def _chance_per_query(n_bank, n_class_captions, ks) -> dict[str, np.ndarray]:
    """Expected per-query score of a uniformly random ranking, by column name."""
    n_bank = np.asarray(n_bank, dtype=int)
    n_class = np.asarray(n_class_captions, dtype=int)
    chance = {}
    for k in ks:
        chance[f"recall@{k}"] = np.minimum(k, n_bank) / n_bank
    for k in ks:
        chance[f"class_recall@{k}"] = 1 - _miss_probability(n_bank, n_class,
                                                            np.minimum(k, n_bank))
    chance["ap"] = _expected_random_ap(np.ones_like(n_bank), n_bank)
    chance["class_ap"] = _expected_random_ap(n_class, n_bank)
    return chance


def retrieval_chance(query_caption_ids, query_categories, bank_caption_ids,
                     bank_categories, ks=RETRIEVAL_KS) -> dict[str, float]:
    """Mean score of a uniformly random ranking of this bank for these queries.

    Instance recall@k is k / n_bank. Class-aware recall@k averages over queries
    1 - C(n_bank - m, k) / C(n_bank, k), m the bank captions of the query's category.
    The expected AP of a random ranking with R relevant among N is
    (H_N + (R - 1)/(N - 1) (N - H_N)) / N, H_N = 1 + 1/2 + ... + 1/N (R = 1 gives
    H_N / N, the mean of 1/rank).

    Parameters
    ----------
    query_caption_ids, query_categories : array-like, shape (n_queries,)
    bank_caption_ids, bank_categories : array-like, shape (n_bank,)
    ks : tuple of int, default=(1, 3, 5)

    Returns
    -------
    chance : dict
        Keyed like the columns of :func:`retrieval_scores` (``recall@k``,
        ``class_recall@k``, ``ap``, ``class_ap``); the value to compare with that
        column's mean.
    """
    ks = _check_ks(ks)
    _, query_codes, bank_codes = _retrieval_targets(
        query_caption_ids, query_categories, bank_caption_ids, bank_categories)
    n_class_captions = np.bincount(bank_codes)[query_codes]
    chance = _chance_per_query(len(bank_codes), n_class_captions, ks)
    return {name: float(np.mean(values)) for name, values in chance.items()}


def _score_ks(per_query: pd.DataFrame) -> tuple[int, ...]:
    """The k of the ``recall@k`` columns, after checking the table's columns."""
    ks = tuple(sorted(int(c.split("@")[1]) for c in per_query.columns
                      if c.startswith("recall@")))
    needed = ["category", "ap", "class_ap", "n_bank", "n_class_captions"]
    missing = [c for c in needed + [f"class_recall@{k}" for k in ks]
               if c not in per_query.columns]
    if missing or not ks:
        raise ValueError(f"per_query lacks columns {missing or ['recall@k']}; build it "
                         f"with retrieval_scores(...).")
    return ks


def summarize_retrieval(per_query: pd.DataFrame, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Recall@k and MAP, instance-level and class-aware, with bootstrap CI and chance.

    Parameters
    ----------
    per_query : DataFrame
        From :func:`retrieval_scores`, possibly a subset of its rows.
    n_boot : int, default=1000
        Bootstrap resamples of the queries.
    level : float, default=0.95
    seed : int, default=0

    Returns
    -------
    table : DataFrame
        One row per metric (``Recall@k (instance)`` for each k, ``Recall@k
        (class-aware)``, ``MAP (instance)``, ``MAP (class-aware)``): ``metric``,
        ``column`` (of ``per_query``), ``value`` (mean over queries), ``ci_low``,
        ``ci_high``, ``chance`` (as :func:`retrieval_chance`), ``n_queries``.
    """
    ks = _score_ks(per_query)
    if len(per_query) == 0:
        raise ValueError("per_query has no rows; score at least one query.")
    chance = _chance_per_query(per_query["n_bank"], per_query["n_class_captions"], ks)
    names = {**{f"recall@{k}": f"Recall@{k} (instance)" for k in ks},
             **{f"class_recall@{k}": f"Recall@{k} (class-aware)" for k in ks},
             "ap": "MAP (instance)", "class_ap": "MAP (class-aware)"}
    rows = []
    for column, metric in names.items():
        values = per_query[column].to_numpy(dtype=float)
        low, high = bootstrap_ci(lambda i: values[i].mean(), len(values), n_boot, level,
                                 seed)
        rows.append({"metric": metric, "column": column, "value": values.mean(),
                     "ci_low": low, "ci_high": high, "chance": chance[column].mean(),
                     "n_queries": len(values)})
    return pd.DataFrame(rows)


def per_class_map(per_query: pd.DataFrame, column: str = "ap") -> pd.DataFrame:
    """Mean average precision of each category, with its chance level.

    Parameters
    ----------
    per_query : DataFrame
        From :func:`retrieval_scores`.
    column : {"ap", "class_ap"}, default="ap"

    Returns
    -------
    table : DataFrame
        ``category``, ``map``, ``n_queries``, ``chance`` (expected MAP of a random
        ranking for these queries), sorted by category.
    """
    check_option("column", column, ("ap", "class_ap"))
    ks = _score_ks(per_query)
    chance = _chance_per_query(per_query["n_bank"], per_query["n_class_captions"], ks)
    table = pd.DataFrame({"category": per_query["category"].to_numpy(),
                          "value": per_query[column].to_numpy(dtype=float),
                          "chance": chance[column]})
    return (table.groupby("category", sort=True)
            .agg(map=("value", "mean"), n_queries=("value", "size"),
                 chance=("chance", "mean"))
            .reset_index())
