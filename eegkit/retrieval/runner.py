"""Task 2B: train one EEG-to-caption configuration and score it (handout 5.5 and 5.6).

:func:`run_retrieval` trains one configuration (loss x text-encoder strategy) on a
split's training trials, early-stops on its validation trials and scores the test
trials with exactly the Task 2A functions (:mod:`eegkit.retrieval.evaluate`).
"""

from __future__ import annotations

import inspect
import os
import resource
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eegkit._checks import check_option
from eegkit.classification import ClassificationRun
from eegkit.data.loading import EEGData
from eegkit.data.splits import Split
from eegkit.data.torchdata import EEGTrialDataset, SplitDatasets
from eegkit.models import subject_lookup
from eegkit.retrieval.clip import Clip, caption_bank, caption_texts, embed_images, embed_texts
from eegkit.retrieval.evaluate import SELECTION_METRICS, RankedCaptions, rank_captions, scores_row, selection_score
from eegkit.retrieval.losses import TERM_LABELS, CombinedLoss, make_loss, teacher_distribution
from eegkit.retrieval.model import EEGCaptionModel, RetrievalObjective, _encoded, eeg_outputs, load_encoder_weights
from eegkit.retrieval.textencoder import STRATEGIES, CaptionEncoder
from eegkit.train import FitResult, TrainConfig, fit, resolve_device, run_key, seed_everything

#: Mean validation scores recorded for choosing a configuration without the test split.
VALIDATION_COLUMNS = tuple(dict.fromkeys((*SELECTION_METRICS, "class_recall@5", "class_ap")))
#: Arguments of :class:`CombinedLoss` besides the lambdas; those that are fields of
#: :class:`RetrievalConfig` are passed on by :meth:`RetrievalConfig.make_loss`.
_LOSS_SETTINGS = tuple(name for name in inspect.signature(CombinedLoss).parameters if name != "lambdas")


@dataclass
class RetrievalConfig:
    """One EEG-retrieval configuration: loss, text-encoder strategy and model.

    Parameters
    ----------
    lambdas : dict of str -> float, default={"infonce": 1.0, "kd": 1.0}
        Weights of the loss terms ``cos``, ``kd``, ``infonce``, ``debiased``, ``ce``.
    strategy : {"frozen", "partial", "adapter", "lora"}, default="frozen"
        What trains in CLIP's text encoder (:mod:`eegkit.retrieval.textencoder`).
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
    shared_projection : bool, default=False
        One projection head shared by all subjects plus subject residual heads
        (:class:`eegkit.models.SubjectHeads` with ``shared=True``).
    prior_weights : tuple of float, default=(0.0,)
        Rank captions by ``cos(eeg, caption) / temperature + w * log p(category |
        EEG)``, with ``p`` from the category head (a ``ce`` term) or from a Task 1
        classifier (``run_retrieval(category_prior=...)``), and ``w`` the one of these
        with the best validation score (``selection_score``: instance Recall@5 +
        class-aware Recall@1 + instance MAP). ``w = 0``
        ranks by the embedding alone; a positive ``w`` factorises the caption's
        probability into the category's probability, from the classifier, times the
        caption's within the category, from the embedding.
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
    shared_projection: bool = False
    prior_weights: tuple = (0.0,)

    def __post_init__(self):
        if self.strategy == "both_frozen":  # the handout's name for frozen text + frozen EEG
            self.strategy, self.train_eeg_encoder = "frozen", False
        check_option("strategy", self.strategy, STRATEGIES)
        self.projection_hidden = tuple(self.projection_hidden)
        self.prior_weights = tuple(float(w) for w in self.prior_weights) or (0.0,)
        self.make_loss()  # checks the loss terms and settings where they are defined

    def make_loss(self) -> CombinedLoss:
        """The loss of this configuration: :func:`eegkit.retrieval.losses.make_loss` with
        the lambdas and every field that :class:`CombinedLoss` takes."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _LOSS_SETTINGS}
        return make_loss({k: v for k, v in self.lambdas.items() if v}, **settings)

    @property
    def loss_label(self) -> str:
        names = {**TERM_LABELS, "debiased": f"debiased({self.debias_strategy})"}
        terms = [f"{w:g}·{names[k]}" if w != 1 else names[k] for k, w in self.lambdas.items() if w]
        return (" + ".join(terms) + (f", KD warm-up {self.kd_warmup_epochs}" if self.kd_warmup_epochs else "")
                + (", shared projection" if self.shared_projection else "")
                + (", category prior" if any(self.prior_weights) else ""))

    @property
    def label(self) -> str:
        eeg = "EEG trained" if self.train_eeg_encoder else "EEG frozen"
        return f"{self.loss_label} | text {STRATEGIES[self.strategy]}, {eeg}"


@dataclass(frozen=True)
class CategoryPrior:
    """A trained classifier's category log-probabilities for the trials a ranking scores.

    Attributes
    ----------
    log_proba : DataFrame, shape (n_trials, n_categories)
        Log-probability of each category (columns ``0 .. n_categories - 1``), one row
        per trial, indexed by the trial's position (``iloc``) in ``EEGData.trials``.
    source : str
        The classifier's name, for the table.
    protocol : str
        The split the classifier was trained on (:attr:`eegkit.data.splits.Split.protocol`).
    """

    log_proba: pd.DataFrame
    source: str
    protocol: str

    @classmethod
    def from_classification(cls, run: ClassificationRun) -> CategoryPrior:
        """The prior of a Task 1 run: its validation and test predictions.

        Parameters
        ----------
        run : ClassificationRun
            A trained classifier (an ensemble gives its averaged prediction) that kept
            its validation predictions.

        Returns
        -------
        prior : CategoryPrior
            ``log_softmax`` of the run's logits, one row per validation and test trial.
        """
        if run.val_predictions is None:
            raise ValueError(f"{run.label} kept no validation predictions: its prior cannot be weighed "
                             "on the validation trials")
        parts = [run.val_predictions, run.predictions]
        log_proba = torch.log_softmax(torch.from_numpy(np.concatenate([p["logits"] for p in parts])), dim=1)
        rows = np.concatenate([p["row"] for p in parts])
        return cls(pd.DataFrame(log_proba.numpy(), index=pd.Index(rows, name="row")), run.label, run.protocol)

    def check(self, split: Split) -> None:
        """Refuse a prior of another split, or one that misses a validation or test trial of ``split``."""
        if self.protocol != split.protocol:
            raise ValueError(f"the category prior of {self.source} comes from the {self.protocol} split, not "
                             f"the {split.protocol} split: its classifier may have trained on these test trials")
        self.rows(split.val, "validation")
        self.rows(split.test, "test")

    def rows(self, rows, part: str) -> np.ndarray:
        """The log-probabilities of some trials.

        Parameters
        ----------
        rows : array-like of int, shape (n_rows,)
            Positions of the trials in ``EEGData.trials``.
        part : str
            Which trials these are ("validation", "test"), for the error message.

        Returns
        -------
        log_proba : ndarray, shape (n_rows, n_categories), float32
        """
        rows = np.asarray(rows)
        missing = pd.Index(rows).difference(self.log_proba.index)
        if len(missing):
            raise ValueError(f"the category prior of {self.source} has no prediction for {len(missing)} "
                             f"{part} trials (rows {list(missing[:5])}...): make it from a run on the same "
                             "data and split")
        return self.log_proba.loc[rows].to_numpy(dtype=np.float32)


@dataclass
class RetrievalRun:
    """A trained EEG-retrieval configuration and its test scores."""

    config: RetrievalConfig
    protocol: str
    fit: FitResult
    #: The test trials ranked against the test bank, with every score.
    test: RankedCaptions
    n_trainable: dict
    #: Peak resident memory of the process so far (CPU) or peak CUDA memory of this run;
    #: on CPU it only grows across runs, so benchmarks/ measures each run in its own process.
    peak_memory_mb: float

    #: How the EEG encoder started: "Task 1" (given weights) or "random".
    encoder_init: str = "random"
    #: Mean validation scores (``VALIDATION_COLUMNS``), for choosing
    #: a configuration without looking at the test split.
    validation: dict = field(default_factory=dict)
    #: The category-prior weight chosen on validation (0: the embedding alone).
    prior_weight: float = 0.0
    #: Where the prior's category probabilities come from: the classifier's name, or
    #: "" for the configuration's own category head (``prior_weight`` says whether
    #: validation chose to use it).
    prior_source: str = ""

    @property
    def selection_score(self) -> float:
        """Validation instance Recall@5 + class-aware Recall@1 + instance MAP (``selection_score``)."""
        return selection_score(self.validation)

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def eeg_encoder_label(self) -> str:
        return f"{'trained' if self.config.train_eeg_encoder else 'frozen'} (init: {self.encoder_init})"

    def summary_row(self, chosen_on_validation: bool | None = None) -> dict:
        """One row of the ablation table: every score with its CI, and the costs.

        Parameters
        ----------
        chosen_on_validation : bool, optional
            Given, the row ends with a ``"chosen on validation"`` column holding it
            (whether this run is the configuration chosen on the validation trials).
        """
        loss = self.config.loss_label
        if self.prior_source:
            loss = loss.replace("category prior", f"category prior ({self.prior_source})")
        row = scores_row(self.test.scores, queries="EEG", loss=loss,
                         **{"text encoder": STRATEGIES[self.config.strategy],
                            "EEG encoder": self.eeg_encoder_label}, protocol=self.protocol)
        row.update(self.test.text_row())
        row.update({f"validation {name}": value for name, value in self.validation.items()})
        row["category prior weight"] = self.prior_weight
        history = self.fit.history
        row.update({
            "trainable EEG params": self.n_trainable["eeg"],
            "trainable text params": self.n_trainable["text"],
            "epochs": len(history), "best epoch": self.fit.best_epoch,
            "seconds per epoch": float(history["seconds"].mean()) if len(history) else float("nan"),
            "reused epochs": self.fit.reused_epochs,
            "process peak memory MB": self.peak_memory_mb,
        })
        if chosen_on_validation is not None:
            row["chosen on validation"] = bool(chosen_on_validation)
        return row

    def chance_row(self) -> dict:
        """The chance row of this run's test scores, for its protocol
        (:meth:`RankedCaptions.chance_row`)."""
        return self.test.chance_row(self.protocol)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _rank(model: EEGCaptionModel, dataset: EEGTrialDataset, lookup: torch.Tensor, all_text: np.ndarray,
          device: str, prior_weights=(0.0,), temperature: float = 1.0,
          category_prior: CategoryPrior | None = None, part: str = "test",
          **score_kwargs) -> dict[float, RankedCaptions]:
    """Rank the bank of ``dataset``'s trials (their unique captions) for each of its trials.

    One ranking per weight ``w`` of ``prior_weights``: cosine similarity plus
    ``w * temperature * log p(caption's category)`` (the same order as
    ``cos / temperature + w * log p``), ``p`` from ``category_prior`` if given, else
    from the model's category head.
    """
    rows = dataset.data.trials.iloc[dataset.rows]
    bank = caption_bank(rows)
    out = eeg_outputs(model, dataset, lookup, device=device)
    if category_prior is not None:
        out["log_proba"] = category_prior.rows(np.asarray(dataset.rows), part)
    rankings = {}
    for weight in prior_weights:
        extra = None
        if weight:
            extra = weight * temperature * out["log_proba"][:, bank["category_id"].to_numpy()]
        rankings[weight] = rank_captions(out["eeg"], all_text[bank["caption_id"].to_numpy()],
                                         rows.reset_index(drop=True), bank, extra_scores=extra, **score_kwargs)
    return rankings


def run_retrieval(
    data: EEGData,
    split: Split,
    clip: Clip,
    config: RetrievalConfig,
    train_config: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    encoder_state: dict | None = None,
    category_state: dict | None = None,
    category_prior: CategoryPrior | None = None,
    normalization: str = "training",
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
    category_state : dict, optional
        Weights of a Task 1 model's subject heads (``model.heads.state_dict()``) that
        initialise the category head (configurations with a ``ce`` term), so the
        category prior starts from the Task 1 classifier.
    category_prior : CategoryPrior, optional
        Category probabilities of the validation and test trials from a trained
        classifier (``CategoryPrior.from_classification(run)``, e.g. the whole Task 1
        ensemble); with it ``config.prior_weights`` weigh these instead of the
        configuration's category head. Ranking only: training is the same.
    normalization : {"training", "recording", "recording_evoked", "aligned"}, default="training"
        How the EEG is z-scored (:class:`eegkit.data.SplitDatasets`); with a Task 1
        encoder, the one it was trained with.
    n_boot : int, default=1000
    bertscore_model : str, None or False
        Model of :func:`eegkit.metrics.bertscore` for the top-ranked caption
        (None: MiniLM); False skips BERTScore.
    progress : bool, default=True

    Returns
    -------
    run : RetrievalRun
    """
    if any(config.prior_weights) and not config.lambdas.get("ce") and category_prior is None:
        raise ValueError("prior_weights need category probabilities: add a 'ce' term to lambdas (a category "
                         "head) or pass category_prior (a trained classifier's)")
    if category_prior is not None:
        category_prior.check(split)  # before training, not after
        if not any(config.prior_weights):
            category_prior = None  # no ranking of this configuration weighs it
    seed_everything(train_config.seed)
    device = resolve_device(train_config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sets = SplitDatasets.from_split(data, split, normalization)
    train_set, val_set = sets.train, sets.val
    trials = data.trials
    train_subjects = sets.train_subjects
    lookup = subject_lookup(train_subjects, data.subjects)

    text = CaptionEncoder(clip, caption_texts(data), config.strategy,
                          n_unfrozen_layers=config.n_unfrozen_layers,
                          adapter_bottleneck=config.adapter_bottleneck, lora_rank=config.lora_rank)
    model = EEGCaptionModel(data.n_chans, data.n_times, data.sfreq, train_subjects, text,
                            projection_hidden=config.projection_hidden,
                            category_head=bool(config.lambdas.get("ce")),
                            encoder_kwargs=config.encoder_kwargs,
                            shared_projection=config.shared_projection)
    if config.encoder_init:
        load_encoder_weights(model, config.encoder_init)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    if category_state is not None and model.category_head is not None:
        try:
            model.category_head.load_state_dict(category_state)
        except RuntimeError as exc:
            raise ValueError("category_state does not fit the category head (one linear head per "
                             "training subject, as Task 1's multihead model with head_hidden=None "
                             f"and no shared head): {str(exc).splitlines()[0]}") from exc
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
    objective = RetrievalObjective(config.make_loss(), lookup, teacher, bank_ids)

    checkpoint = None
    if checkpoint_dir:
        starting = {**(encoder_state or {}),
                    **{f"category_head.{k}": v for k, v in (category_state or {}).items()}}
        key = run_key(data, split, {"clip": clip.fingerprint(), "config": asdict(config),
                                    "train": asdict(train_config),
                                    # absent when the default, so older runs keep their keys
                                    **({"normalization": normalization} if normalization != "training" else {})},
                      starting)
        checkpoint = Path(checkpoint_dir) / f"retrieval_{split.protocol}_{key}.pt"
    result = fit(model, objective, train_set, val_set, train_config, checkpoint=checkpoint,
                 progress=progress, name=config.label)

    result.model.encoded_input = False  # evaluation runs the whole model on raw trials
    all_text = result.model.text.embed_all().cpu().numpy()
    weights = dict(prior_weights=config.prior_weights, temperature=config.temperature,
                   category_prior=category_prior)
    val_rankings = _rank(result.model, sets.val, lookup, all_text, train_config.device, n_boot=None,
                         part="validation", **weights)
    validation = {w: {c: float(r.per_query[c].mean()) for c in VALIDATION_COLUMNS} for w, r in val_rankings.items()}
    weight = max(validation, key=lambda w: selection_score(validation[w]))
    test = _rank(result.model, sets.test, lookup, all_text, train_config.device, n_boot=n_boot,
                 seed=train_config.seed, bertscore_model=bertscore_model,
                 prior_weights=(weight,), temperature=config.temperature, category_prior=category_prior)[weight]
    test.per_query["subject"] = test.queries["subject"].to_numpy()
    return RetrievalRun(config=config, protocol=split.protocol, fit=result, test=test,
                        n_trainable=result.model.n_trainable(), peak_memory_mb=_peak_memory_mb(device),
                        encoder_init="Task 1" if encoder_state is not None or config.encoder_init else "random",
                        validation=validation[weight], prior_weight=weight,
                        prior_source=category_prior.source if category_prior is not None else "")
