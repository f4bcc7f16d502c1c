"""CLIP loading (any checkpoint, one code path) and embedding caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eegkit.retrieval.clip import (
    ClipLoadError,
    caption_bank,
    embed_images,
    embed_texts,
    image_queries,
    load_clip,
)
from eegkit.twin.twinclip import (
    TWIN_CLIP_PRESETS,
    build_twin_clip,
    twin_clip_info,
)


@pytest.fixture(scope="module")
def saved_random_clip(tmp_path_factory):
    """A tiny randomly initialised CLIPModel saved like any downloaded checkpoint."""
    config = TWIN_CLIP_PRESETS["tiny"]
    model, processor = build_twin_clip(config)
    folder = tmp_path_factory.mktemp("clip") / "my-clip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model


def test_load_clip_from_a_saved_folder(saved_random_clip, tiny_data, tmp_path):
    folder, original = saved_random_clip
    clip = load_clip(folder)
    assert clip.label == "my-clip"  # not a twin CLIP: no twin record in the folder
    assert twin_clip_info(folder) is None
    for (name, a), b in zip(original.state_dict().items(), clip.model.state_dict().values()):
        assert torch.equal(a, b), name
    queries = image_queries(tiny_data.trials)
    E = embed_images(clip, list(queries.image_path[:10]), batch_size=4, cache_dir=tmp_path, progress=False)
    T = embed_texts(clip, list(queries.caption[:10]), cache_dir=tmp_path, progress=False)
    assert E.shape == T.shape == (10, clip.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1, atol=1e-5)


def test_unloadable_names_get_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipLoadError, match="clip-vit-base-patch32.*Tried local files.*pass its path"):
        load_clip("openai/clip-vit-base-patch32")
    with pytest.raises(ClipLoadError, match="does not exist"):
        load_clip(tmp_path / "no-such-folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipLoadError, match="empty"):
        load_clip(tmp_path / "empty")


def test_embeddings_are_cached_and_keyed_by_content(twin_clip_tiny, tiny_data, tmp_path, monkeypatch):
    clip = twin_clip_tiny
    texts = list(caption_bank(tiny_data.trials).caption[:5])
    first = embed_texts(clip, texts, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("txt-*.npy"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as patch:
        patch.setattr(clip.model, "get_text_features", fail)
        np.testing.assert_array_equal(embed_texts(clip, texts, cache_dir=tmp_path, progress=False), first)
    embed_texts(clip, texts[::-1], cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("txt-*.npy"))) == 2

    # an image file that changes gets a new cache entry, never the stale embedding
    image = tmp_path / "img.jpg"
    image.write_bytes(open(image_queries(tiny_data.trials).image_path[0], "rb").read())
    a = embed_images(clip, [image], cache_dir=tmp_path, progress=False)
    image.write_bytes(open(image_queries(tiny_data.trials).image_path[1], "rb").read())
    b = embed_images(clip, [image], cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("img-*.npy"))) == 2
    assert not np.allclose(a, b)


def test_a_corrupt_image_is_named_when_embedded(random_clip, tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(good)
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=rf"{bad}: not a readable image"):
        embed_images(random_clip, [good, bad], cache_dir=False, progress=False)


def test_a_misspelt_hub_id_fails_fast_offline_without_contacting_a_hub(monkeypatch):
    """HF_HUB_OFFLINE=1: only local files are tried, and the error comes in seconds."""
    import time

    from transformers import AutoProcessor, CLIPModel  # noqa: F401 (imports not timed)

    import eegkit.retrieval.clip as clip_module

    def no_hub(*args, **kwargs):
        raise AssertionError("a test contacted the hub")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_module, "_probe_hub", no_hub)
    started = time.perf_counter()
    with pytest.raises(ClipLoadError, match="eegkit-no-such-org/clip-typo.*Tried local files"):
        load_clip("eegkit-no-such-org/clip-typo")
    assert time.perf_counter() - started < 5


def test_an_unreachable_hub_is_asked_once_and_named(monkeypatch):
    """Online (HF_HUB_OFFLINE unset), one probe decides; no download is retried."""
    import huggingface_hub

    calls = []

    def unreachable(name, timeout=None):
        calls.append((name, timeout))
        raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(ClipLoadError, match="could not be reached.*HF_HUB_OFFLINE=1"):
        load_clip("eegkit-no-such-org/clip-typo")
    assert calls == [("eegkit-no-such-org/clip-typo", 10.0)]
