"""Scores: classification (accuracy with CI and p-value), caption retrieval, caption text.

:mod:`~eegkit.metrics.classification`, :mod:`~eegkit.metrics.retrieval` (Recall@K, MAP,
exact chance) and :mod:`~eegkit.metrics.text` (BERTScore, CLIPScore); every public name
is importable from ``eegkit.metrics``.
"""

from eegkit.metrics.classification import (
    accuracy,
    balanced_accuracy,
    top_k_accuracy,
    confusion_matrix,
    bootstrap_ci,
    permutation_p_value,
    score_table,
    per_subject_accuracy,
    N_CLASSES,
)
from eegkit.metrics.retrieval import (
    cosine_similarity,
    caption_bank_index,
    retrieval_scores,
    retrieval_chance,
    summarize_retrieval,
    per_class_map,
    RETRIEVAL_KS,
)
from eegkit.metrics.embeddings import category_variance_share
from eegkit.metrics.text import (
    bleu,
    bertscore,
    bertscore_summary,
    clip_score,
    matched_mismatched_scores,
    score_auc,
    clip_score_summary,
    MINILM_NAME,
    MINILM_N_LAYERS,
)

__all__ = [
    "category_variance_share",
    "accuracy",
    "balanced_accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "bootstrap_ci",
    "permutation_p_value",
    "score_table",
    "per_subject_accuracy",
    "N_CLASSES",
    "cosine_similarity",
    "caption_bank_index",
    "retrieval_scores",
    "retrieval_chance",
    "summarize_retrieval",
    "per_class_map",
    "RETRIEVAL_KS",
    "bertscore",
    "bleu",
    "bertscore_summary",
    "clip_score",
    "matched_mismatched_scores",
    "score_auc",
    "clip_score_summary",
    "MINILM_NAME",
    "MINILM_N_LAYERS",
]
