"""Task 2: caption retrieval with CLIP, from images (2A) and from EEG (2B).

* :mod:`~eegkit.retrieval.clip`: load CLIP (hub id, folder or the twin CLIP), embed
  images and captions, the caption bank;
* :mod:`~eegkit.retrieval.textencoder`: CLIP's text side under a fine-tuning strategy
  (frozen, partial unfreezing, adapters, LoRA);
* :mod:`~eegkit.retrieval.losses`: cosine, KD, InfoNCE, debiased InfoNCE, CE;
* :mod:`~eegkit.retrieval.model`: the EEG encoder with per-subject projection heads
  into CLIP space, and its training objective;
* :mod:`~eegkit.retrieval.evaluate`: rank a bank from any queries and score it;
* :mod:`~eegkit.retrieval.runner`: :func:`run_retrieval`, one configuration trained
  and scored.
"""

from eegkit.retrieval.clip import Clip, ClipLoadError, caption_bank, embed_images, embed_texts, image_queries, load_clip
from eegkit.retrieval.evaluate import (
    RankedCaptions,
    ablation_table,
    chance_row,
    chance_verdicts,
    example_queries,
    image_retrieval,
    rank_captions,
    reference_labels,
    scores_row,
    text_scores_row,
)
from eegkit.retrieval.runner import CategoryPrior, RetrievalConfig, RetrievalRun, run_retrieval

__all__ = [
    "CategoryPrior",
    "Clip",
    "ClipLoadError",
    "RankedCaptions",
    "RetrievalConfig",
    "RetrievalRun",
    "ablation_table",
    "caption_bank",
    "chance_row",
    "chance_verdicts",
    "embed_images",
    "embed_texts",
    "example_queries",
    "image_queries",
    "image_retrieval",
    "load_clip",
    "rank_captions",
    "reference_labels",
    "run_retrieval",
    "scores_row",
    "text_scores_row",
]
