"""The twin CLIP: a corpus disjoint from the experiment, and retrieval far above chance."""

from __future__ import annotations

import numpy as np

from eegkit.retrieval.clip import (
    caption_bank,
    embed_images,
    embed_texts,
    image_queries,
)
import pytest
import torch

from eegkit.twin.twinclip import (
    TWIN_CLIP_PRESETS,
    TwinClipLoss,
    pretraining_specs,
    twin_clip_key,
)


def test_pretraining_corpus_excludes_the_experiment(tiny_data):
    config = TWIN_CLIP_PRESETS["tiny"]
    experiment = set(tiny_data.captions.caption)
    corpus = {spec.caption for spec in pretraining_specs(config, experiment)}
    assert len(corpus) == 20 * config.pairs_per_category
    assert not corpus & experiment
    # and the exclusion really bites: without it the same draw overlaps the experiment
    assert twin_clip_key(config, experiment) != twin_clip_key(config, [])


def test_twin_clip_retrieves_held_out_images_far_above_chance(twin_clip_tiny, tiny_data):
    clip = twin_clip_tiny
    assert clip.label == "twin CLIP"
    queries, bank = image_queries(tiny_data.trials), caption_bank(tiny_data.trials)
    E = embed_images(clip, list(queries.image_path), cache_dir=False, progress=False)
    T = embed_texts(clip, list(bank.caption), cache_dir=False, progress=False)
    sim = E @ T.T
    truth = bank.caption_id.searchsorted(queries.caption_id)
    rank = (sim > sim[np.arange(len(queries)), truth][:, None]).sum(1)
    recall5, chance5 = (rank < 5).mean(), 5 / len(bank)
    assert recall5 > 8 * chance5, (recall5, chance5)


def test_twin_clip_loss_targets_spread_over_the_category():
    categories = torch.tensor([0, 0, 1, 0])
    targets = TwinClipLoss(category_weight=0.6).get_targets(categories)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    # own pair: 0.4 + 0.6 / 3; another pair of the category: 0.6 / 3; other category: 0
    torch.testing.assert_close(targets[0], torch.tensor([0.6, 0.2, 0.0, 0.2]))
    torch.testing.assert_close(targets[2], torch.tensor([0.0, 0.0, 1.0, 0.0]))


def test_twin_clip_loss_is_clip_loss_at_weight_zero_and_mixes_its_terms():
    ce = torch.nn.functional.cross_entropy
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    categories = torch.tensor([0, 1, 0, 2, 1, 0])
    match = torch.arange(6)
    torch.testing.assert_close(TwinClipLoss(category_weight=0.0)(logits, categories),
                               (ce(logits, match) + ce(logits.T, match)) / 2)
    terms = TwinClipLoss(category_weight=0.3)(logits, categories, output_dict=True)
    torch.testing.assert_close(terms["loss"], 0.7 * terms["instance_loss"] + 0.3 * terms["category_loss"])
    with pytest.raises(ValueError, match="category_weight must lie in"):
        TwinClipLoss(category_weight=1.0)
