"""The twin CLIP: a corpus disjoint from the experiment, and retrieval far above chance."""

from __future__ import annotations

import numpy as np

from eegkit.retrieval.clip import (
    caption_bank,
    embed_images,
    embed_texts,
    image_queries,
)
from eegkit.twin.twinclip import (
    TWIN_CLIP_PRESETS,
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
