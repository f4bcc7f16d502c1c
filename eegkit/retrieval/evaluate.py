"""Rank a caption bank from image or EEG queries and score it: one path for Tasks 2A and 2B.

:func:`rank_captions` turns query and caption embeddings into every Task 2 score
(Recall@K and MAP with chance and bootstrap intervals, BERTScore of the top caption,
matched-vs-mismatched CLIPScore); :func:`image_retrieval` does it for CLIP's image
queries (notebook 04, and the image row of notebook 05), and
:func:`eegkit.retrieval.run_retrieval` for EEG queries. The rows of the ablation
tables come from the result objects (:meth:`RankedCaptions.table_row`,
:meth:`RankedCaptions.chance_row`, :meth:`eegkit.retrieval.RetrievalRun.summary_row`) or,
for a bare score table, :func:`reference_row`; :func:`ablation_table` joins them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eegkit import metrics
from eegkit.retrieval.clip import Clip, caption_bank, embed_images, embed_texts, image_queries

#: Scores whose confidence interval is compared with chance in :func:`chance_verdicts`.
VERDICT_METRICS = ("Recall@5 (instance)", "Recall@1 (class-aware)", "Recall@5 (class-aware)")
#: The ``queries`` label of the ideal observer's row in Task 2B tables.
CEILING_QUERIES = "EEG ideal observer (Bayes ceiling)"
#: The ``queries`` label of the chance rows.
CHANCE_QUERIES = "chance (random ranking)"
#: Label columns of the ablation tables, in order.
LABEL_COLUMNS = ("queries", "loss", "text encoder", "EEG encoder", "protocol")


@dataclass
class RankedCaptions:
    """Queries ranked against a caption bank, with their scores.

    Attributes
    ----------
    queries : DataFrame
        One row per query (a trial or an image) with ``caption_id``, ``category`` and
        ``caption`` (the true caption), in query order.
    bank : DataFrame
        The unique captions ranked, with ``caption_id``, ``category``, ``caption``.
    similarity : ndarray, shape (n_queries, n_bank)
        The scores the bank was ranked by (cosine similarity of the embeddings).
    query_emb : ndarray, shape (n_queries, dim), or None
        Unit-norm query embeddings (None for :func:`rank_by_scores`).
    bank_emb : ndarray, shape (n_bank, dim), or None
        Unit-norm caption embeddings, in bank order.
    per_query : DataFrame
        :func:`eegkit.metrics.retrieval_scores` of every query.
    scores : DataFrame or None
        :func:`eegkit.metrics.summarize_retrieval`: value, chance and 95 % CI per score.
    bertscore : DataFrame or None
        BERTScore of each query's top-ranked caption against its true caption.
    bleu : float or None
        Corpus BLEU-4 of the top-ranked captions against the true ones.
    matched, mismatched : ndarray, shape (n_queries,), or None
        CLIPScore with the true caption and with a caption of another category.
    """

    queries: pd.DataFrame
    bank: pd.DataFrame
    similarity: np.ndarray
    query_emb: np.ndarray | None
    bank_emb: np.ndarray | None
    per_query: pd.DataFrame
    scores: pd.DataFrame | None = None
    bertscore: pd.DataFrame | None = None
    bleu: float | None = None
    matched: np.ndarray | None = None
    mismatched: np.ndarray | None = None

    def top_captions(self, query_index, k: int = 5) -> list[np.ndarray]:
        """The ``k`` best-ranked captions (text) of each query in ``query_index``."""
        sim = self.similarity[np.asarray(query_index)]
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        captions = self.bank["caption"].to_numpy()
        return [captions[row] for row in order]

    def text_row(self) -> dict:
        """BLEU, BERTScore and CLIPScore columns of this ranking's table row."""
        row = text_scores_row(self.bertscore, self.matched, self.mismatched)
        if self.bleu is not None:
            row["BLEU-4"] = self.bleu
        return row

    def table_row(self, queries: str, protocol: str = "session") -> dict:
        """This ranking as one row of an ablation table (a row that is not a trained
        configuration: image queries, a reference ranker).

        Parameters
        ----------
        queries : str
            The row's ``queries`` label, e.g. ``"images (twin CLIP)"``.
        protocol : str, default="session"

        Returns
        -------
        row : dict
            The label columns (``"-"`` for loss and encoders), each score with its
            CI (:func:`reference_row`), then BLEU, BERTScore and CLIPScore
            (:meth:`text_row`).
        """
        return {**reference_row(self._summary("table_row"), queries, protocol), **self.text_row()}

    def chance_row(self, protocol: str = "session") -> dict:
        """The chance level of every score of this ranking (a random ranking of the same
        bank), labelled ``CHANCE_QUERIES``, as one row of an ablation table."""
        return chance_row(self._summary("chance_row"), **reference_labels(CHANCE_QUERIES, protocol))

    def _summary(self, method: str) -> pd.DataFrame:
        if self.scores is None:
            raise ValueError(f"{method} needs the summary scores, but this ranking was made with "
                             "n_boot=None (per-query scores only); rank again with n_boot=1000")
        return self.scores


def rank_captions(
    query_emb: np.ndarray,
    bank_emb: np.ndarray,
    queries: pd.DataFrame,
    bank: pd.DataFrame,
    *,
    n_boot: int | None = 1000,
    seed: int = 0,
    bertscore_model: str | None | bool = None,
    extra_scores: np.ndarray | None = None,
) -> RankedCaptions:
    """Rank ``bank`` for each query by cosine similarity and compute every Task 2 score.

    Parameters
    ----------
    query_emb : ndarray, shape (n_queries, dim)
    bank_emb : ndarray, shape (n_bank, dim)
    queries : DataFrame
        ``caption_id``, ``category`` and ``caption`` of each query's true caption.
    bank : DataFrame
        ``caption_id``, ``category`` and ``caption`` of each bank caption.
    n_boot : int or None, default=1000
        Bootstrap resamples of the summary; None computes only ``per_query`` (as
        for validation, where only means are needed) and skips the text scores.
    seed : int, default=0
    bertscore_model : str, None or False
        Model of :func:`eegkit.metrics.bertscore` (None: MiniLM, offline); False skips it.
    extra_scores : ndarray, shape (n_queries, n_bank), optional
        Added to the cosine similarity before ranking (e.g. a weighted
        log-probability of each caption's category, see
        :func:`eegkit.retrieval.runner.run_retrieval`); CLIPScore still compares the
        embeddings alone.

    Returns
    -------
    ranked : RankedCaptions
    """
    sim = metrics.cosine_similarity(query_emb, bank_emb)
    if extra_scores is not None:
        sim = sim + np.asarray(extra_scores, dtype=sim.dtype)
    ranked = _ranked(sim, queries, bank, np.asarray(query_emb), np.asarray(bank_emb), n_boot, seed,
                     bertscore_model)
    if n_boot is not None:
        truth = metrics.caption_bank_index(queries["caption_id"], bank["caption_id"])
        ranked.matched, ranked.mismatched = metrics.matched_mismatched_scores(query_emb, bank_emb, truth,
                                                                              seed=seed)
    return ranked


def rank_by_scores(scores: np.ndarray, queries: pd.DataFrame, bank: pd.DataFrame, *,
                   n_boot: int | None = 1000, seed: int = 0,
                   bertscore_model: str | None | bool = None) -> RankedCaptions:
    """:func:`rank_captions` for rankers that give scores but no embeddings.

    Parameters
    ----------
    scores : ndarray, shape (n_queries, n_bank)
        Higher ranks first; equal scores are ties (scored at their expected value).
    queries, bank, n_boot, seed, bertscore_model
        As for :func:`rank_captions`. There is no CLIPScore: no embedding to compare.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return _ranked(scores, queries, bank, None, None, n_boot, seed, bertscore_model)


def _ranked(sim, queries, bank, query_emb, bank_emb, n_boot, seed, bertscore_model) -> RankedCaptions:
    per_query = metrics.retrieval_scores(sim, queries["caption_id"], queries["category"],
                                         bank["caption_id"], bank["category"])
    ranked = RankedCaptions(queries, bank, sim, query_emb, bank_emb, per_query)
    if n_boot is None:
        return ranked
    ranked.scores = metrics.summarize_retrieval(per_query, n_boot=n_boot, seed=seed)
    top = list(bank["caption"].to_numpy()[per_query["top1"].to_numpy()])
    ranked.bleu = metrics.bleu(top, list(queries["caption"]))
    if bertscore_model is not False:
        ranked.bertscore = metrics.bertscore(top, list(queries["caption"]), model_type=bertscore_model or None)
    return ranked


#: The validation scores Task 2B's choices are made by: the three the rows are
#: judged on (instance Recall@5, class-aware Recall@1, instance MAP), as columns of
#: :func:`eegkit.metrics.retrieval_scores`, and as metrics of the score tables.
_JUDGED = {"recall@5": "Recall@5 (instance)", "class_recall@1": "Recall@1 (class-aware)", "ap": "MAP (instance)"}
SELECTION_METRICS = tuple(_JUDGED)
#: The test scores Task 2B's learned rows are judged on against the reference rows.
TARGET_METRICS = tuple(_JUDGED.values())


def selection_score(validation: dict) -> float:
    """What Task 2B choices are made by (configurations, category-prior weights, the
    ridge strength): the sum of the mean validation instance Recall@5, class-aware
    Recall@1 and instance MAP, from a dict with those keys (``SELECTION_METRICS``).

    Class-aware Recall@5 is not among them: it rewards spreading the top five
    captions over five categories, which costs instance Recall@5 and MAP whenever
    the top category is right. The raw scores are added, so class-aware Recall@1,
    which differs most between configurations (0.10-0.27 on the default twin against
    0.03-0.07 for the other two), weighs most.
    """
    missing = [name for name in SELECTION_METRICS if name not in validation]
    if missing:
        raise KeyError(f"selection_score needs the validation means of {list(SELECTION_METRICS)}; "
                       f"missing {missing}")
    return float(sum(validation[name] for name in SELECTION_METRICS))


def within_category(ranked: RankedCaptions, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Instance-level scores when each query ranks only the captions of its own category.

    A diagnostic of what a ranker knows beyond the category: a ranker that knows
    the category and nothing else (classify-then-retrieve, where the captions of a
    category tie) scores exactly chance here, ``k / n`` for a category of ``n``
    captions in the bank.

    Parameters
    ----------
    ranked : RankedCaptions
    n_boot, seed
        Bootstrap resamples of the queries.

    Returns
    -------
    table : DataFrame
        The instance-level rows of :func:`eegkit.metrics.summarize_retrieval`
        (``Recall@k (instance)``, ``MAP (instance)``), with chance from each
        category's number of bank captions.
    """
    parts = []
    bank_categories = ranked.bank["category"].to_numpy()
    query_categories = ranked.queries["category"].to_numpy()
    for category in np.unique(query_categories):
        rows = np.flatnonzero(query_categories == category)
        columns = np.flatnonzero(bank_categories == category)
        queries = ranked.queries.iloc[rows]
        parts.append(metrics.retrieval_scores(
            ranked.similarity[np.ix_(rows, columns)], queries["caption_id"], queries["category"],
            ranked.bank["caption_id"].to_numpy()[columns], bank_categories[columns]))
    table = metrics.summarize_retrieval(pd.concat(parts, ignore_index=True), n_boot=n_boot, seed=seed)
    return table[~table["column"].str.startswith("class_")].reset_index(drop=True)


def image_retrieval(clip: Clip, rows: pd.DataFrame, *, batch_size: int = 64, n_boot: int = 1000,
                    seed: int = 0, bertscore_model: str | None | bool = None) -> RankedCaptions:
    """Task 2A: CLIP ranks the unique captions of ``rows`` from each image they show.

    Parameters
    ----------
    clip : Clip
    rows : DataFrame
        Trials of ``EEGData.trials`` (e.g. a split's test part); each distinct image
        is one query, and the bank is their distinct captions.
    batch_size, n_boot, seed, bertscore_model
        See :func:`rank_captions`.
    """
    queries, bank = image_queries(rows), caption_bank(rows)
    image_emb = embed_images(clip, list(queries["image_path"]), batch_size=batch_size)
    text_emb = embed_texts(clip, list(bank["caption"]), batch_size=batch_size)
    return rank_captions(image_emb, text_emb, queries, bank, n_boot=n_boot, seed=seed,
                         bertscore_model=bertscore_model)


def chance_verdicts(scores: pd.DataFrame, metric_names=VERDICT_METRICS) -> pd.DataFrame:
    """Whether each score's 95 % interval lies above chance.

    Parameters
    ----------
    scores : DataFrame
        :func:`eegkit.metrics.summarize_retrieval` output.
    metric_names : sequence of str, default=VERDICT_METRICS

    Returns
    -------
    verdicts : DataFrame
        ``metric``, ``value``, ``ci_low``, ``ci_high``, ``chance`` and
        ``above_chance`` (``ci_low > chance``).
    """
    table = scores.set_index("metric").loc[list(metric_names), ["value", "ci_low", "ci_high", "chance"]]
    table["above_chance"] = table["ci_low"] > table["chance"]
    return table.reset_index()


def example_queries(n_queries: int, n_examples: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n_examples`` queries (at most ``n_queries``) drawn without replacement."""
    rng = np.random.default_rng(seed)
    return rng.choice(n_queries, size=min(n_examples, n_queries), replace=False)


def scores_row(scores: pd.DataFrame, **labels) -> dict:
    """One table row from :func:`eegkit.metrics.summarize_retrieval`: value and CI per metric."""
    row = dict(labels)
    for _, r in scores.iterrows():
        row[r["metric"]] = r["value"]
        row[f"{r['metric']} CI"] = f"{r['ci_low']:.3f}-{r['ci_high']:.3f}"
    return row


def chance_row(scores: pd.DataFrame, **labels) -> dict:
    """The chance levels of a :func:`eegkit.metrics.summarize_retrieval` table as one row."""
    return {**labels, **dict(zip(scores["metric"], scores["chance"])), "CLIPScore AUC": 0.5}


def text_scores_row(bertscore: pd.DataFrame | None, matched=None, mismatched=None) -> dict:
    """BERTScore F1 (mean, share > 0.7) and matched-vs-mismatched CLIPScore AUC, as columns."""
    row = {}
    if bertscore is not None:
        summary = metrics.bertscore_summary(bertscore)
        row.update({"BERTScore F1": summary["f1"], "BERTScore F1 > 0.7": summary["share_f1_above"],
                    "BERTScore model": summary["model"]})
    if matched is not None:
        row["CLIPScore AUC"] = metrics.score_auc(matched, mismatched)
    return row


def reference_labels(queries: str, protocol: str) -> dict:
    """Label columns of a row that is not a trained configuration (images, ceiling, chance)."""
    return {"queries": queries, "loss": "-", "text encoder": "-", "EEG encoder": "-", "protocol": protocol}


def reference_row(scores: pd.DataFrame, queries: str, protocol: str = "session") -> dict:
    """One ablation-table row of scores that no trained configuration made (e.g. the
    ideal observer's, :data:`CEILING_QUERIES`).

    Parameters
    ----------
    scores : DataFrame
        :func:`eegkit.metrics.summarize_retrieval` output.
    queries : str
        The row's ``queries`` label.
    protocol : str, default="session"

    Returns
    -------
    row : dict
        :func:`reference_labels`, then each score and its CI (:func:`scores_row`).
        A :class:`RankedCaptions` gives the same plus its text scores with
        :meth:`RankedCaptions.table_row`.
    """
    return scores_row(scores, **reference_labels(queries, protocol))


def with_fraction_of_ceiling(table: pd.DataFrame, ceiling_queries: str = CEILING_QUERIES,
                             metric_names=VERDICT_METRICS + ("MAP (instance)", "MAP (class-aware)")) -> pd.DataFrame:
    """Add ``<metric> / ceiling`` columns: each row's score over the ideal observer's.

    Parameters
    ----------
    table : DataFrame
        An ablation table with a row whose ``queries`` is ``ceiling_queries``.
    ceiling_queries : str
        The ``queries`` label of the ideal observer's row.
    metric_names : sequence of str
        Score columns to divide.
    """
    ceiling = table[table["queries"] == ceiling_queries]
    if len(ceiling) != 1:
        raise ValueError(f"expected one row with queries == {ceiling_queries!r}, found {len(ceiling)}")
    out = table.copy()
    for name in metric_names:
        if name in out:
            out[f"{name} / ceiling"] = out[name] / float(ceiling[name].iloc[0])
    return out


#: ``queries`` labels of the reference rows start with these.
REFERENCE_QUERIES = ("classify-then-retrieve", "linear map")


def versus_references(table: pd.DataFrame, chosen_column: str = "chosen on validation",
                      references=REFERENCE_QUERIES, metric_names=TARGET_METRICS) -> pd.DataFrame:
    """The configuration chosen on validation against each reference row, metric by metric.

    Parameters
    ----------
    table : DataFrame
        An ablation table (:func:`ablation_table`) with a boolean ``chosen_column``
        true for exactly one row, one row whose ``queries`` starts with each of
        ``references``, and optionally a chance row (``queries`` starting "chance").
    chosen_column : str
    references : sequence of str
    metric_names : sequence of str
        Score columns compared (test scores).

    Returns
    -------
    comparison : DataFrame
        One row per metric: ``metric``, ``chosen`` (its value), ``chosen CI``, one
        column per reference (its ``queries`` label) with its value, ``chance``, and
        ``above every reference`` (strictly above each reference's value).
    """
    is_chosen = table[chosen_column].fillna(False).astype(bool) if chosen_column in table else None
    if is_chosen is None or int(is_chosen.sum()) != 1:
        raise ValueError(f"expected exactly one row with {chosen_column!r} true")
    chosen = table[is_chosen].iloc[0]
    queries = table["queries"].astype(str)
    refs = {}
    for prefix in references:
        found = table[queries.str.startswith(prefix)]
        if len(found) != 1:
            raise ValueError(f"expected one reference row whose queries start with {prefix!r}, found {len(found)}")
        refs[found["queries"].iloc[0]] = found.iloc[0]
    chance = table[queries.str.startswith("chance")]
    rows = []
    for name in metric_names:
        row = {"metric": name, "chosen": float(chosen[name]), "chosen CI": chosen.get(f"{name} CI")}
        row.update({label: float(ref[name]) for label, ref in refs.items()})
        row["chance"] = float(chance[name].iloc[0]) if len(chance) else float("nan")
        row["above every reference"] = all(float(chosen[name]) > float(ref[name]) for ref in refs.values())
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(rows: list[dict]) -> pd.DataFrame:
    """Rows from :func:`scores_row` / :meth:`RetrievalRun.summary_row` as one table."""
    table = pd.DataFrame(rows)
    first = [c for c in LABEL_COLUMNS if c in table]
    return table[first + [c for c in table.columns if c not in first]]
