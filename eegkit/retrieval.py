"""Task 2B: EEG-to-caption retrieval (handout 5.5 and 5.6).

The Task 1 encoder (CNN stage + shared transformer) feeds one projection head per
subject into CLIP's text-embedding space; outputs are unit norm. Only the heads of
the subjects in a batch take part in its graph (selective backpropagation, as in
Task 1). An optional category head on the encoder's output serves the
cross-entropy term. CLIP's text side is a :class:`eegkit.textencoder.CaptionEncoder`
under one of the fine-tuning strategies.

:func:`run_retrieval` trains one configuration (loss x text-encoder strategy) on a
split's training trials, early-stops on its validation trials and scores the test
trials with exactly the Task 2A functions of :mod:`eegkit.metrics`.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from eegkit import metrics
from eegkit.channels import CATEGORIES
from eegkit.clip import Clip, caption_bank, embed_images, embed_texts, update_digest
from eegkit.data import EEGData
from eegkit.losses import CombinedLoss, make_loss, teacher_distribution
from eegkit.models import UNKNOWN_SUBJECT, SubjectHeads, build_encoder, subject_lookup
from eegkit.splits import Split
from eegkit.textencoder import CaptionEncoder
from eegkit.torchdata import ChannelNormalizer, EEGTrialDataset
from eegkit.train import FitResult, StepOutput, TrainConfig, fit, make_loader, resolve_device, seed_everything

LOSS_TERMS = ("cos", "kd", "infonce", "debiased", "ce")
VALIDATION_COLUMNS = ("recall@5", "class_recall@5", "ap", "class_ap")
STRATEGY_LABELS = {
    "frozen": "frozen",
    "partial": "partial unfreezing",
    "adapter": "adapters",
    "lora": "LoRA",
}


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
        Add a 20-way classifier on the encoder output (the CE term).
    encoder_kwargs : dict, optional
        Arguments of :func:`eegkit.models.build_encoder` (``d``, ``n_layers``, ...).
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float, subjects, text: CaptionEncoder,
                 projection_hidden=(), category_head: bool = False, encoder_kwargs: dict | None = None):
        super().__init__()
        self.encoder = build_encoder(n_chans, n_times, sfreq, **(encoder_kwargs or {}))
        self.heads = SubjectHeads(subjects, self.encoder.d, text.dim, hidden=tuple(projection_hidden))
        self.category_head = nn.Linear(self.encoder.d, len(CATEGORIES)) if category_head else None
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
        logits = self.category_head(features) if self.category_head is not None else None
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
    batch's distinct captions is their own ("in-batch caption accuracy"), a cheap
    learning-curve signal; the real scores come from the full test bank. During
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
        return StepOutput(total, correct, len(caption_ids))


@dataclass
class RetrievalConfig:
    """One EEG-retrieval configuration: loss, text-encoder strategy and model.

    Parameters
    ----------
    lambdas : dict of str -> float, default={"infonce": 1.0, "kd": 1.0}
        Weights of the loss terms ``cos``, ``kd``, ``infonce``, ``debiased``, ``ce``.
    strategy : {"frozen", "partial", "adapter", "lora"}, default="frozen"
        What trains in CLIP's text encoder (:mod:`eegkit.textencoder`).
    train_eeg_encoder : bool, default=True
        False freezes the EEG encoder (from ``encoder_init`` or the ``encoder_state``
        given to :func:`run_retrieval`, else random): its features are computed once
        and only the projection heads (and the text side, if it trains) learn. With
        ``strategy="frozen"`` this is the handout's "both frozen"; with
        ``train_eeg_encoder=True`` it is "frozen CLIP".
    kd_warmup_epochs : int, default=0
        Epochs of KD alone before the other terms join.
    temperature : float, default=0.07
        InfoNCE and debiased InfoNCE.
    tau_t, tau_s : float, default=0.07
        KD teacher and student temperatures.
    debias_strategy : {"downweight", "topk", "same_class"}, default="downweight"
    debias_k : int, default=1
    debias_margin : float, default=0.5
    symmetric : bool, default=False
        Symmetric InfoNCE (EEG->text and text->EEG).
    projection_hidden : tuple of int, default=()
    encoder_kwargs : dict, default={}
    encoder_init : str, default=""
        A Task 1 checkpoint (``.pt`` from :func:`eegkit.train.fit`) whose encoder
        weights initialise this one.
    n_unfrozen_layers : int, default=1
    adapter_bottleneck : int, default=16
    lora_rank : int, default=4
    """

    lambdas: dict = field(default_factory=lambda: {"infonce": 1.0, "kd": 1.0})
    strategy: str = "frozen"
    train_eeg_encoder: bool = True
    kd_warmup_epochs: int = 0
    temperature: float = 0.07
    tau_t: float = 0.07
    tau_s: float = 0.07
    debias_strategy: str = "downweight"
    debias_k: int = 1
    debias_margin: float = 0.5
    symmetric: bool = False
    projection_hidden: tuple = ()
    encoder_kwargs: dict = field(default_factory=dict)
    encoder_init: str = ""
    n_unfrozen_layers: int = 1
    adapter_bottleneck: int = 16
    lora_rank: int = 4

    def __post_init__(self):
        unknown = set(self.lambdas) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; choose from {LOSS_TERMS}")
        if self.strategy == "both_frozen":  # the handout's name for frozen text + frozen EEG
            self.strategy, self.train_eeg_encoder = "frozen", False
        if self.strategy not in STRATEGY_LABELS:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {tuple(STRATEGY_LABELS)}")
        self.projection_hidden = tuple(self.projection_hidden)

    @property
    def loss_label(self) -> str:
        names = {"cos": "cos", "kd": "KD", "infonce": "InfoNCE", "debiased": f"debiased({self.debias_strategy})",
                 "ce": "CE"}
        terms = [f"{w:g}·{names[k]}" if w != 1 else names[k] for k, w in self.lambdas.items() if w]
        return " + ".join(terms) + (f", KD warm-up {self.kd_warmup_epochs}" if self.kd_warmup_epochs else "")

    @property
    def label(self) -> str:
        eeg = "EEG trained" if self.train_eeg_encoder else "EEG frozen"
        return f"{self.loss_label} | text {STRATEGY_LABELS[self.strategy]}, {eeg}"


@dataclass
class RetrievalRun:
    """A trained EEG-retrieval configuration and its test scores."""

    config: RetrievalConfig
    protocol: str
    fit: FitResult
    per_query: pd.DataFrame
    scores: pd.DataFrame
    bank: pd.DataFrame
    eeg_embeddings: np.ndarray
    text_embeddings: np.ndarray
    n_trainable: dict
    #: Peak resident memory of the process so far (CPU) or peak CUDA memory of this run;
    #: on CPU it only grows across runs, so benchmarks/ measures each run in its own process.
    peak_memory_mb: float
    bertscore: pd.DataFrame | None = None
    matched: np.ndarray | None = None
    mismatched: np.ndarray | None = None

    #: How the EEG encoder started: "Task 1" (given weights) or "random".
    encoder_init: str = "random"
    #: Mean validation scores (``recall@5``, ``class_recall@5``, ``ap``), for choosing
    #: a configuration without looking at the test split.
    validation: dict = field(default_factory=dict)

    @property
    def selection_score(self) -> float:
        """Validation instance + class-aware Recall@5 (the criterion of the issue, on validation)."""
        return self.validation.get("recall@5", 0.0) + self.validation.get("class_recall@5", 0.0)

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def eeg_encoder_label(self) -> str:
        return f"{'trained' if self.config.train_eeg_encoder else 'frozen'} (init: {self.encoder_init})"

    def summary_row(self) -> dict:
        """One row of the ablation table: every score with its CI, and the costs."""
        row = scores_row(self.scores, queries="EEG", loss=self.config.loss_label,
                         **{"text encoder": STRATEGY_LABELS[self.config.strategy],
                            "EEG encoder": self.eeg_encoder_label}, protocol=self.protocol)
        row.update(text_scores_row(self.bertscore, self.matched, self.mismatched))
        row.update({f"validation {name}": value for name, value in self.validation.items()})
        history = self.fit.history
        row.update({
            "trainable EEG params": self.n_trainable["eeg"],
            "trainable text params": self.n_trainable["text"],
            "epochs": len(history), "best epoch": self.fit.best_epoch,
            "seconds per epoch": float(history["seconds"].mean()) if len(history) else float("nan"),
            "process peak memory MB": self.peak_memory_mb,
        })
        return row


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


def scores_row(scores: pd.DataFrame, **labels) -> dict:
    """One table row from :func:`eegkit.metrics.summarize_retrieval`: value and CI per metric."""
    row = dict(labels)
    for _, r in scores.iterrows():
        row[r["metric"]] = r["value"]
        row[f"{r['metric']} CI"] = f"{r['ci_low']:.3f}-{r['ci_high']:.3f}"
    return row


def chance_row(scores: pd.DataFrame, **labels) -> dict:
    """The chance levels of a :func:`eegkit.metrics.summarize_retrieval` table as one row."""
    return {**labels, **dict(zip(scores["metric"], scores["chance"])),
            "CLIPScore AUC": 0.5}


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


def ablation_table(rows: list[dict]) -> pd.DataFrame:
    """Rows from :func:`scores_row` / :meth:`RetrievalRun.summary_row` as one table."""
    table = pd.DataFrame(rows)
    first = [c for c in ("queries", "loss", "text encoder", "EEG encoder", "protocol") if c in table]
    return table[first + [c for c in table.columns if c not in first]]


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


def caption_texts(data: EEGData) -> list[str]:
    """Every caption, indexed by caption id."""
    table = data.captions.drop_duplicates("caption_id").sort_values("caption_id")
    if not np.array_equal(table["caption_id"].to_numpy(), np.arange(len(table))):
        raise ValueError("caption ids are not 0..n-1; load the data with eegkit.load_dataset")
    return list(table["caption"])


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
    saved = torch.load(path, map_location="cpu", weights_only=False)
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
def embed_eeg(model: EEGCaptionModel, dataset: EEGTrialDataset, lookup: torch.Tensor,
              batch_size: int = 256, device: str = "auto") -> np.ndarray:
    """Unit-norm EEG embeddings of every trial of a dataset, shape (n_trials, dim)."""
    dev = resolve_device(device)
    model.to(dev).eval()
    parts = []
    for batch in make_loader(dataset, batch_size):
        subject = lookup[batch["subject"]].to(dev)
        parts.append(model(batch["X"].to(dev), subject)["eeg"].float().cpu().numpy())
    return np.concatenate(parts)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _run_key(data: EEGData, split: Split, clip: Clip, config: RetrievalConfig, train: TrainConfig,
             encoder_state: dict | None) -> str:
    digest = hashlib.sha256(json.dumps({
        "root": str(Path(data.root).resolve()), "twin": data.twin, "n_trials": len(data),
        "subjects": data.subjects, "clip": clip.fingerprint(), "config": asdict(config),
        "train": asdict(train),
    }, sort_keys=True, default=str).encode())
    for rows in (split.train, split.val, split.test):
        digest.update(np.asarray(rows, dtype=np.int64).tobytes())
    return update_digest(digest, encoder_state or {}).hexdigest()[:12]


def _score_rows(model: EEGCaptionModel, rows: pd.DataFrame, dataset: EEGTrialDataset, lookup: torch.Tensor,
                all_text: np.ndarray, device: str):
    """Rank the bank of ``rows`` (their unique captions) for each of their trials."""
    bank = caption_bank(rows)
    eeg = embed_eeg(model, dataset, lookup, device=device)
    text_emb = all_text[bank["caption_id"].to_numpy()]
    per_query = metrics.retrieval_scores(metrics.cosine_similarity(eeg, text_emb), rows["caption_id"],
                                         rows["category"], bank["caption_id"], bank["category"])
    return per_query, bank, eeg, text_emb


def run_retrieval(
    data: EEGData,
    split: Split,
    clip: Clip,
    config: RetrievalConfig,
    train_config: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    encoder_state: dict | None = None,
    n_boot: int = 1000,
    bertscore_model: str | None | bool = None,
    progress: bool = True,
) -> RetrievalRun:
    """Train one EEG-to-caption configuration and score it on ``split.test``.

    The channel normaliser is fitted on the training trials; the KD teacher is CLIP's
    image-to-caption distribution over the training bank (the unique captions of the
    training trials), computed once. Scores use the test bank (the unique captions
    of the test trials), embedded by the text encoder as trained.

    Parameters
    ----------
    data : EEGData
    split : Split
    clip : Clip
        Not modified: trainable strategies work on a copy.
    config : RetrievalConfig
    train_config : TrainConfig
    checkpoint_dir : path-like, optional
        ``retrieval_<protocol>_<key>.pt``, reused only for the very same run.
    encoder_state : dict, optional
        Weights of a Task 1 encoder (``model.encoder.state_dict()`` of a trained
        :class:`eegkit.models.MultiHeadEEGNet`) to start from; with
        ``train_eeg_encoder=False`` they stay fixed and their features are computed once.
    n_boot : int, default=1000
    bertscore_model : str, None or False
        Model of :func:`eegkit.metrics.bertscore` for the top-ranked caption
        (None: MiniLM); False skips BERTScore.
    progress : bool, default=True

    Returns
    -------
    run : RetrievalRun
    """
    seed_everything(train_config.seed)
    device = resolve_device(train_config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    normalizer = ChannelNormalizer.fit(data, split.train)
    train_set, val_set, test_set = (EEGTrialDataset(data, rows, normalizer)
                                    for rows in (split.train, split.val, split.test))
    trials = data.trials
    train_subjects = tuple(s for s in data.subjects if s in set(trials["subject"].iloc[split.train]))
    lookup = subject_lookup(train_subjects, data.subjects)

    text = CaptionEncoder(clip, caption_texts(data), config.strategy,
                          n_unfrozen_layers=config.n_unfrozen_layers,
                          adapter_bottleneck=config.adapter_bottleneck, lora_rank=config.lora_rank)
    model = EEGCaptionModel(data.n_chans, data.n_times, data.sfreq, train_subjects, text,
                            projection_hidden=config.projection_hidden,
                            category_head=bool(config.lambdas.get("ce")),
                            encoder_kwargs=config.encoder_kwargs)
    if config.encoder_init:
        load_encoder_weights(model, config.encoder_init)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    if not config.train_eeg_encoder:
        model.encoder.requires_grad_(False)
        train_set, val_set = (_encoded(model.encoder, ds, train_config.device) for ds in (train_set, val_set))
        model.encoded_input = True

    teacher = bank_ids = None
    if config.lambdas.get("kd"):
        train_bank = caption_bank(trials.iloc[split.train])
        image_emb = embed_images(clip, list(data.captions["image_path"]), progress=progress)
        bank_emb = embed_texts(clip, list(train_bank["caption"]), progress=progress)
        teacher = teacher_distribution(image_emb, bank_emb, config.tau_t)  # (n_images, n_bank)
        bank_ids = torch.tensor(train_bank["caption_id"].to_numpy())
    loss = make_loss({k: v for k, v in config.lambdas.items() if v},
                     kd_warmup_epochs=config.kd_warmup_epochs, temperature=config.temperature,
                     tau_s=config.tau_s, debias_strategy=config.debias_strategy, debias_k=config.debias_k,
                     debias_margin=config.debias_margin, symmetric=config.symmetric)
    objective = RetrievalObjective(loss, lookup, teacher, bank_ids)

    checkpoint = None
    if checkpoint_dir:
        key = _run_key(data, split, clip, config, train_config, encoder_state)
        checkpoint = Path(checkpoint_dir) / f"retrieval_{split.protocol}_{key}.pt"
    result = fit(model, objective, train_set, val_set, train_config, checkpoint=checkpoint,
                 progress=progress, name=config.label)

    result.model.encoded_input = False  # evaluation runs the whole model on raw trials
    all_text = result.model.text.embed_all().cpu().numpy()
    val_per_query = _score_rows(result.model, trials.iloc[split.val], EEGTrialDataset(data, split.val, normalizer),
                                lookup, all_text, train_config.device)[0]
    test_rows = trials.iloc[split.test]
    per_query, bank, eeg, text_emb = _score_rows(result.model, test_rows, test_set, lookup, all_text,
                                                 train_config.device)
    per_query["subject"] = test_rows["subject"].to_numpy()
    scores = metrics.summarize_retrieval(per_query, n_boot=n_boot, seed=train_config.seed)
    bert = None
    if bertscore_model is not False:
        top = bank["caption"].to_numpy()[per_query["top1"].to_numpy()]
        bert = metrics.bertscore(list(top), list(test_rows["caption"]), model_type=bertscore_model or None)
    truth = metrics.caption_bank_index(test_rows["caption_id"], bank["caption_id"])
    matched, mismatched = metrics.matched_mismatched_scores(eeg, text_emb, truth, seed=train_config.seed)
    return RetrievalRun(config=config, protocol=split.protocol, fit=result, per_query=per_query,
                        scores=scores, bank=bank, eeg_embeddings=eeg, text_embeddings=text_emb,
                        n_trainable=result.model.n_trainable(), peak_memory_mb=_peak_memory_mb(device),
                        bertscore=bert, matched=matched, mismatched=mismatched,
                        encoder_init="Task 1" if encoder_state is not None or config.encoder_init else "random",
                        validation={c: float(val_per_query[c].mean()) for c in VALIDATION_COLUMNS})
