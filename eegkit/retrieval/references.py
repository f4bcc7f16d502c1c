"""Two reference rankers for Task 2B that every learned configuration must beat.

* :func:`classify_then_retrieve`: a Task 1 classifier's category probabilities; each
  caption of the bank scores the probability of its category, so captions of one
  category tie (and are scored at their expected value by the metrics).
* :func:`linear_map_retrieval`: ridge regression from time-binned EEG to the CLIP
  text embedding of the trial's caption, the standard linear brain-to-embedding map
  of the decoding literature; the ridge strength is chosen on the validation
  trials' retrieval, and captions rank by cosine similarity to the prediction.

Both are fitted on the training split only and scored with the functions of
:mod:`eegkit.retrieval.evaluate` on the same test bank as the learned rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from eegkit.data.loading import EEGData
from eegkit.data.splits import Split
from eegkit.models.classical import split_features
from eegkit.retrieval.clip import Clip, caption_bank, caption_texts, embed_texts
from eegkit.retrieval.evaluate import (SELECTION_METRICS, RankedCaptions, rank_by_scores, rank_captions,
                                       selection_score)

#: Ridge strengths tried on validation (features are z-scored, so these span weak to strong).
RIDGE_ALPHAS = (1e1, 1e2, 1e3, 1e4, 1e5)


def classify_then_retrieve(log_proba: np.ndarray, rows: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                           bertscore_model: str | None | bool = None) -> RankedCaptions:
    """Rank the bank of ``rows`` by each trial's predicted probability of each caption's category.

    Parameters
    ----------
    log_proba : ndarray, shape (n_trials, n_categories)
        A classifier's log-probabilities (or any monotone scores) for the trials of
        ``rows``, in the same order.
    rows : DataFrame
        The scored trials (rows of ``EEGData.trials``); the bank is their unique captions.
    n_boot, seed, bertscore_model
        See :func:`eegkit.retrieval.evaluate.rank_captions`.
    """
    if len(log_proba) != len(rows):
        raise ValueError(f"{len(log_proba)} rows of log_proba for {len(rows)} trials")
    bank = caption_bank(rows)
    scores = np.asarray(log_proba)[:, bank["category_id"].to_numpy()]  # (n_trials, n_bank)
    return rank_by_scores(scores, rows.reset_index(drop=True), bank, n_boot=n_boot, seed=seed,
                          bertscore_model=bertscore_model)


@dataclass
class LinearMap:
    """The ridge map chosen on validation and its test ranking.

    Attributes
    ----------
    alpha : float
        The chosen ridge strength.
    validation : DataFrame
        ``alpha`` and the mean validation scores of ``SELECTION_METRICS`` of each
        strength tried.
    test : RankedCaptions
    """

    alpha: float
    validation: pd.DataFrame
    test: RankedCaptions


def linear_map_retrieval(data: EEGData, split: Split, clip: Clip, *, alphas=RIDGE_ALPHAS, n_boot: int = 1000,
                         seed: int = 0, bertscore_model: str | None | bool = None) -> LinearMap:
    """Ridge regression from binned EEG to the caption's CLIP text embedding.

    Features are :func:`eegkit.models.classical.split_features` (binned, z-scored per
    subject with training statistics); targets are the frozen CLIP's unit-norm text
    embeddings of each training trial's caption. ``alpha`` maximises the validation
    ``selection_score`` (instance Recall@5 + class-aware Recall@1 + instance MAP, each
    validation trial ranking the validation bank), then the test trials rank the test
    bank.
    """
    trials = data.trials
    text = embed_texts(clip, caption_texts(data), progress=False)  # (n_captions, dim)
    parts = {part: np.asarray(getattr(split, part)) for part in ("train", "val", "test")}
    Z = split_features(data, split)
    Y_train = text[trials["caption_id"].to_numpy()[parts["train"]]]

    def ranking(model, part, **kwargs) -> RankedCaptions:
        rows = trials.iloc[parts[part]]
        bank = caption_bank(rows)
        return rank_captions(model.predict(Z[part]), text[bank["caption_id"].to_numpy()],
                             rows.reset_index(drop=True), bank, **kwargs)

    tried = []
    for alpha in alphas:
        model = Ridge(alpha=alpha).fit(Z["train"], Y_train)
        per_query = ranking(model, "val", n_boot=None).per_query
        tried.append({"alpha": alpha, **{name: float(per_query[name].mean()) for name in SELECTION_METRICS},
                      "model": model})
    best = max(tried, key=selection_score)
    test = ranking(best["model"], "test", n_boot=n_boot, seed=seed, bertscore_model=bertscore_model)
    validation = pd.DataFrame([{k: v for k, v in t.items() if k != "model"} for t in tried])
    return LinearMap(alpha=best["alpha"], validation=validation, test=test)
