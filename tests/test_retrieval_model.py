"""Task 2B: the EEG-caption model, text-encoder strategies and run_retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ENCODER
from conftest import RETRIEVAL_SUBJECTS as SUBJECTS

from eegkit.data.splits import make_split
from eegkit.data.torchdata import EEGTrialDataset
from eegkit.models import MultiHeadEEGNet
from eegkit.retrieval.losses import make_loss
from eegkit.retrieval.model import (
    EEGCaptionModel,
    RetrievalObjective,
    encode_trials,
    load_encoder_weights,
)
from eegkit.retrieval.clip import caption_texts
from eegkit.retrieval.textencoder import CaptionEncoder

CAPTIONS = [f"a small red cat number {i}" for i in range(8)]


def _model(clip, strategy="frozen", **kwargs):
    text = CaptionEncoder(clip, CAPTIONS, strategy)
    return EEGCaptionModel(122, 125, 250.0, SUBJECTS, text, encoder_kwargs=ENCODER, **kwargs)


def test_outputs_are_unit_norm_in_clip_space(random_clip):
    model = _model(random_clip, projection_hidden=(32, 32), category_head=True)
    out = model(torch.randn(4, 122, 125), torch.tensor([0, 1, 2, -1]))
    assert out["eeg"].shape == (4, random_clip.embedding_dim)
    torch.testing.assert_close(out["eeg"].norm(dim=1), torch.ones(4))
    assert out["logits"].shape == (4, 20)
    # two hidden layers: Dropout, (Linear, GELU) x 2, Linear
    assert sum(isinstance(m, torch.nn.Linear) for m in model.heads.heads["sub-02"]) == 3


def test_selective_backprop_on_projection_heads(random_clip):
    torch.manual_seed(0)
    model = _model(random_clip)
    loss = make_loss({"infonce": 1.0, "cos": 1.0})
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2,
                                  weight_decay=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        out = model(torch.randn(4, 122, 125), torch.tensor([0, 1, 0, 1]))
        ids = torch.tensor([0, 1, 2, 3])
        optimizer.zero_grad(set_to_none=True)
        loss(out["eeg"], model.text(ids), ids).backward()
        assert all(p.grad is None for p in model.heads.heads["sub-05"].parameters())
        optimizer.step()
    after = model.state_dict()
    for key in before:
        if key.startswith("heads.heads.sub-05") or key.startswith("text."):
            assert torch.equal(before[key], after[key]), key  # absent head; frozen CLIP
    assert not torch.equal(before["heads.heads.sub-02.1.weight"], after["heads.heads.sub-02.1.weight"])
    assert not torch.equal(before["encoder.cnn.electrode_embedding"], after["encoder.cnn.electrode_embedding"])


@pytest.mark.parametrize("strategy", ["frozen", "partial", "adapter", "lora"])
def test_text_strategies_train_only_what_they_should(random_clip, strategy):
    original = {k: v.clone() for k, v in random_clip.model.state_dict().items()}
    text = CaptionEncoder(random_clip, CAPTIONS, strategy)
    trainable = {n for n, p in text.named_parameters() if p.requires_grad}
    if strategy == "frozen":
        assert not trainable and not text.trainable
    elif strategy == "partial":
        last = len(text.text_model.encoder.layers) - 1
        assert trainable and all(f"encoder.layers.{last}." in n or "final_layer_norm" in n
                                 or n.startswith("text_projection") for n in trainable)
    elif strategy == "adapter":
        assert trainable and all(".adapter." in n for n in trainable)
    else:
        assert trainable and all("lora_" in n for n in trainable)
        assert any("q_proj" in n for n in trainable) and any("v_proj" in n for n in trainable)
    # Adapters (zero-initialised up-projection) and LoRA (B = 0) start as the pretrained model.
    frozen = CaptionEncoder(random_clip, CAPTIONS, "frozen")
    torch.testing.assert_close(text.embed_all(), frozen.embed_all())
    if trainable:
        ids = torch.tensor([0, 3, 3])
        emb = text(ids)
        assert emb.requires_grad
        (1 - emb[:, 0]).sum().backward()
        assert all(p.grad is not None for n, p in text.named_parameters() if p.requires_grad)
    # the caller's CLIP is never modified
    for key, value in random_clip.model.state_dict().items():
        assert torch.equal(original[key], value), key


def test_trainable_text_changes_the_embeddings_used_for_evaluation(random_clip):
    text = CaptionEncoder(random_clip, CAPTIONS, "partial")
    before = text.embed_all().clone()
    optimizer = torch.optim.SGD([p for p in text.parameters() if p.requires_grad], lr=1.0)
    (1 - text(torch.arange(4))[:, 0]).sum().backward()
    optimizer.step()
    assert not torch.allclose(text.embed_all(), before)


def test_encoded_trials_match_the_encoder(small_data, random_clip):
    split = make_split(small_data.trials, "session")
    model = EEGCaptionModel(small_data.n_chans, small_data.n_times, small_data.sfreq, small_data.subjects,
                            CaptionEncoder(random_clip, caption_texts(small_data)), encoder_kwargs=ENCODER)
    dataset = EEGTrialDataset(small_data, split.train[:10])
    encoded = encode_trials(model.encoder, dataset, device="cpu")
    model.eval()
    with torch.no_grad():
        direct = model.encoder(torch.stack([dataset[i]["X"] for i in range(3)]))
    torch.testing.assert_close(torch.stack([encoded[i]["X"] for i in range(3)]), direct)
    assert encoded[2]["caption_id"] == dataset[2]["caption_id"]


def test_objective_tracks_in_batch_accuracy_and_kd_warmup(small_data, random_clip):
    model = EEGCaptionModel(small_data.n_chans, small_data.n_times, small_data.sfreq, small_data.subjects,
                            CaptionEncoder(random_clip, caption_texts(small_data)), encoder_kwargs=ENCODER)
    dataset = EEGTrialDataset(small_data, np.arange(8))
    batch = {k: torch.stack([dataset[i][k] for i in range(8)]) for k in dataset[0]}
    n_images, bank_ids = len(small_data.captions), torch.arange(5)
    teacher = torch.softmax(torch.randn(n_images, 5), dim=1)
    loss = make_loss({"kd": 1.0, "infonce": 1.0}, kd_warmup_epochs=1)
    objective = RetrievalObjective(loss, torch.arange(len(small_data.subjects)), teacher, bank_ids)
    model.train()
    objective.set_epoch(0)
    warm = objective(model, batch)
    assert 0 <= warm.n_correct <= warm.n == 8
    assert loss.active_terms == ("kd",) or list(loss.active_terms) == ["kd"]
    objective.set_epoch(1)
    objective(model, batch)
    assert set(loss.active_terms) == {"kd", "infonce"}


def test_load_encoder_weights_from_a_task1_checkpoint(small_data, random_clip, tmp_path):
    task1 = MultiHeadEEGNet(small_data.n_chans, small_data.n_times, small_data.sfreq, small_data.subjects,
                            **ENCODER)
    torch.save({"state": {"best_state": task1.state_dict()}}, tmp_path / "task1.pt")
    model = EEGCaptionModel(small_data.n_chans, small_data.n_times, small_data.sfreq, small_data.subjects,
                            CaptionEncoder(random_clip, caption_texts(small_data)), encoder_kwargs=ENCODER)
    load_encoder_weights(model, tmp_path / "task1.pt")
    for key, value in task1.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder_weights(model, tmp_path / "missing.pt")
    torch.save({"model": {"heads.x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no 'encoder"):
        load_encoder_weights(model, tmp_path / "other.pt")
