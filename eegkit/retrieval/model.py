"""The EEG-to-caption model of Task 2B (handout 5.5) and the objective it trains with.

The Task 1 encoder (CNN stage + shared transformer) feeds one projection head per
subject into CLIP's text-embedding space; outputs are unit norm. Only the heads of
the subjects in a batch take part in its graph (selective backpropagation, as in
Task 1). An optional category head on the encoder's output serves the
cross-entropy term. CLIP's text side is a
:class:`eegkit.retrieval.textencoder.CaptionEncoder` under one of the fine-tuning
strategies.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eegkit._io import update_digest
from eegkit.data.channels import CATEGORIES
from eegkit.data.torchdata import EEGTrialDataset
from eegkit.models import UNKNOWN_SUBJECT, SubjectHeads, build_encoder
from eegkit.retrieval.losses import CombinedLoss
from eegkit.retrieval.textencoder import CaptionEncoder
from eegkit.train import StepOutput, make_loader, resolve_device


class EEGCaptionModel(nn.Module):
    """EEG encoder + per-subject projection heads into CLIP space, and the text side.

    Parameters
    ----------
    n_chans, n_times : int
    sfreq : float
        Sampling rate in Hz.
    subjects : sequence of str
        One projection head per subject ID.
    text : CaptionEncoder
        Maps caption ids to unit-norm CLIP text embeddings (dimension ``text.dim``).
    projection_hidden : sequence of int, default=()
        Hidden widths of each projection head: ``()`` linear, ``(256,)`` or
        ``(256, 256)`` an MLP with one or two hidden layers.
    category_head : bool, default=False
        Add a 20-way classifier on the encoder output (the CE term), one linear head
        per subject as in Task 1 (:class:`eegkit.models.SubjectHeads`, so a Task 1
        model's heads can be loaded into it).
    encoder_kwargs : dict, optional
        Arguments of :func:`eegkit.models.build_encoder` (``d``, ``n_layers``, ...).
    shared_projection : bool, default=False
        A projection head shared by every subject plus subject-specific residual heads
        (:class:`eegkit.models.SubjectHeads` with ``shared=True``) instead of
        independent heads.
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float, subjects, text: CaptionEncoder,
                 projection_hidden=(), category_head: bool = False, encoder_kwargs: dict | None = None,
                 shared_projection: bool = False):
        super().__init__()
        self.encoder = build_encoder(n_chans, n_times, sfreq, **(encoder_kwargs or {}))
        self.heads = SubjectHeads(subjects, self.encoder.d, text.dim, hidden=tuple(projection_hidden),
                                  shared=shared_projection)
        self.category_head = SubjectHeads(subjects, self.encoder.d, len(CATEGORIES)) if category_head else None
        self.text = text
        # True while training on precomputed encoder features (EEG encoder frozen).
        self.encoded_input = False

    @property
    def subjects(self) -> tuple[str, ...]:
        return self.heads.subjects

    def forward(self, X: torch.Tensor, subject: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``X`` (batch, n_chans, n_times) -> ``eeg`` (batch, dim) unit norm, ``logits`` (batch, 20) or None."""
        if subject is None:
            subject = torch.full((X.shape[0],), UNKNOWN_SUBJECT, device=X.device)
        features = X if self.encoded_input else self.encoder(X)
        eeg = nn.functional.normalize(self.heads(features, subject).float(), dim=-1)
        logits = self.category_head(features, subject) if self.category_head is not None else None
        return {"eeg": eeg, "logits": logits}

    def n_trainable(self) -> dict[str, int]:
        """Trainable parameters on the EEG side and on the text side."""
        text = self.text.n_parameters()
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"eeg": total - text, "text": text}


class RetrievalObjective:
    """The combined loss of one batch (handout 5.5.6) for :func:`eegkit.train.fit`.

    Parameters
    ----------
    loss : CombinedLoss
    subject_lookup : LongTensor
        Dataset subject index -> projection head index.
    teacher : Tensor, shape (n_images, n_bank), optional
        CLIP's image-to-caption distribution of every image over the training bank,
        computed once (KD term).
    bank_caption_ids : LongTensor, shape (n_bank,), optional
        The training bank's caption ids (KD term).

    Notes
    -----
    ``StepOutput.n_correct`` counts trials whose most similar caption among the
    batch's captions is their own ("in-batch caption accuracy"), and
    ``extra["category_acc"]`` those whose most similar caption is of their own
    category (in-batch category accuracy, the class-aware counterpart), cheap
    learning-curve signals; the real scores come from the full test bank. During
    validation the warm-up is ignored, so validation losses of all epochs compare.
    """

    def __init__(self, loss: CombinedLoss, subject_lookup: torch.Tensor, teacher: torch.Tensor | None = None,
                 bank_caption_ids: torch.Tensor | None = None):
        self.loss, self.lookup = loss, subject_lookup
        self.teacher, self.bank_caption_ids = teacher, bank_caption_ids
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _bank(self, model: EEGCaptionModel, device: torch.device) -> torch.Tensor:
        """The KD bank's text embeddings. A trainable text encoder re-embeds the whole bank
        once per epoch, without gradient: re-embedding hundreds of captions with gradient
        at every step would cost more than the rest of the step, and the text side already
        learns through the batch's own captions (cos, InfoNCE)."""
        ids = self.bank_caption_ids.to(device)
        if not model.text.trainable:
            return model.text(ids)
        if getattr(self, "_bank_epoch", None) != (self.epoch, model.training):
            with torch.no_grad():
                self._bank_cache = model.text.embed_all()[ids]
            self._bank_epoch = (self.epoch, model.training)
        return self._bank_cache

    def __call__(self, model: EEGCaptionModel, batch: dict[str, torch.Tensor]) -> StepOutput:
        self.loss.set_epoch(self.epoch if model.training else 10**9)
        subject = self.lookup.to(batch["subject"].device)[batch["subject"]]
        out = model(batch["X"], subject)
        caption_ids = batch["caption_id"]
        txt = model.text(caption_ids)
        kd_inputs = {}
        if self.teacher is not None:
            kd_inputs = {"bank": self._bank(model, caption_ids.device),
                         "teacher": self.teacher.to(caption_ids.device)[batch["image_id"]]}
        total = self.loss(out["eeg"], txt, caption_ids, categories=batch["y"], logits=out["logits"],
                          y=batch["y"], **kd_inputs)
        with torch.no_grad():
            best = (out["eeg"] @ txt.T).argmax(dim=1)
            correct = int((caption_ids[best] == caption_ids).sum())
            category_correct = int((batch["y"][best] == batch["y"]).sum())
        return StepOutput(total, correct, len(caption_ids), extra={"category_acc": category_correct})


class EncodedTrials(EEGTrialDataset):
    """A split's trials with ``X`` replaced by frozen-encoder features, shape (n_trials, d).

    With the EEG encoder frozen its output never changes, so it is computed once and
    each epoch trains the projection heads on it, instead of re-running the encoder.
    """

    def __init__(self, base: EEGTrialDataset, features: torch.Tensor):
        self.__dict__.update(base.__dict__)
        self.features = features

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [{"X": self.features[index], "row": torch.tensor(self.rows[index], dtype=torch.int64),
                 **{name: labels[index] for name, labels in self._labels.items()}}
                for index in indices]


@torch.no_grad()
def encode_trials(encoder: nn.Module, dataset: EEGTrialDataset, batch_size: int = 256,
                  device: str = "auto") -> EncodedTrials:
    """Run a (frozen) encoder once over a dataset: ``X`` (n_chans, n_times) -> (d,)."""
    dev = resolve_device(device)
    encoder.to(dev).eval()
    features = torch.cat([encoder(batch["X"].to(dev)).float().cpu()
                          for batch in make_loader(dataset, batch_size)])
    return EncodedTrials(dataset, features)


_ENCODED: dict[str, EncodedTrials] = {}


def _encoded(encoder: nn.Module, dataset: EEGTrialDataset, device: str) -> EncodedTrials:
    """:func:`encode_trials`, memoised in this process: configurations that share a frozen
    encoder (the loss ablation) encode each split once, not once per configuration."""
    digest = update_digest(hashlib.sha256(np.asarray(dataset.rows, dtype=np.int64).tobytes()),
                           encoder.state_dict())
    if dataset.normalizer is not None:
        for value in vars(dataset.normalizer).values():
            digest.update(np.asarray(value).tobytes())
    key = digest.hexdigest()
    if key not in _ENCODED:
        if len(_ENCODED) >= 4:
            _ENCODED.pop(next(iter(_ENCODED)))
        _ENCODED[key] = encode_trials(encoder, dataset, device=device)
    return _ENCODED[key]


def load_encoder_weights(model: EEGCaptionModel, checkpoint: str | os.PathLike) -> None:
    """Copy the encoder of a Task 1 checkpoint (best epoch) into ``model``.

    Raises
    ------
    FileNotFoundError, ValueError
        When the file is missing or holds no compatible encoder.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {path} does not exist; pass a .pt written by "
                                "eegkit.train.fit for the multihead model, or encoder_init=''")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved.get("state", {}).get("best_state") or saved.get("model") or saved
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    if not encoder:
        raise ValueError(f"{path} holds no 'encoder.*' weights; it is not a multihead checkpoint")
    try:
        model.encoder.load_state_dict(encoder)
    except RuntimeError as exc:
        raise ValueError(f"{path}: its encoder does not match this model's (encoder_kwargs differ?): "
                         f"{str(exc).splitlines()[0]}") from exc


@torch.no_grad()
def eeg_outputs(model: EEGCaptionModel, dataset: EEGTrialDataset, lookup: torch.Tensor,
                batch_size: int = 256, device: str = "auto") -> dict[str, np.ndarray | None]:
    """The model's outputs for every trial of a dataset.

    Returns
    -------
    outputs : dict
        ``eeg``: unit-norm EEG embeddings, shape (n_trials, dim); ``log_proba``: the
        category head's log-probabilities, shape (n_trials, 20), or None without one.
    """
    dev = resolve_device(device)
    model.to(dev).eval()
    eeg, log_proba = [], []
    for batch in make_loader(dataset, batch_size):
        subject = lookup[batch["subject"]].to(dev)
        out = model(batch["X"].to(dev), subject)
        eeg.append(out["eeg"].float().cpu().numpy())
        if out["logits"] is not None:
            log_proba.append(torch.log_softmax(out["logits"].float(), dim=1).cpu().numpy())
    return {"eeg": np.concatenate(eeg), "log_proba": np.concatenate(log_proba) if log_proba else None}


def embed_eeg(model: EEGCaptionModel, dataset: EEGTrialDataset, lookup: torch.Tensor,
              batch_size: int = 256, device: str = "auto") -> np.ndarray:
    """Unit-norm EEG embeddings of every trial of a dataset, shape (n_trials, dim)."""
    return eeg_outputs(model, dataset, lookup, batch_size, device)["eeg"]
