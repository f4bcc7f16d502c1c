"""One call per experiment: train a classifier on a split and score it on the test part.

Notebooks and benchmarks call :func:`run_classification`; it glues the loader, the
split, normalisation, the model factory, the training loop and the metrics together,
so the notebooks hold no logic of their own.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from eegkit.data.alignment import euclidean_alignment
from eegkit.data.channels import CATEGORIES
from eegkit.data.loading import EEGData
from eegkit.data.splits import Split
from eegkit.data.torchdata import SplitDatasets
from eegkit.metrics import (
    bootstrap_ci,
    confusion_matrix,
    per_subject_accuracy,
    score_table,
)
from eegkit.models import make_model, subject_lookup
from eegkit.models.classical import (
    CLASSICAL_MODELS,
    LOGISTIC_CS,
    make_classical,
    n_parameters,
    split_features,
)
from eegkit.train import (
    FitResult,
    StepOutput,
    TrainConfig,
    fit,
    head_indices,
    predict,
    resolve_device,
    run_key,
    seed_everything,
)

#: Display names of the models in tables and figures.
MODEL_LABELS = {
    "wang_fc": "Wang et al. FC",
    "eegnet": "EEGNet",
    "shallow": "ShallowConvNet",
    "multihead": "Multi-head CNN+Transformer",
    "lda": "Shrinkage LDA",
    "logistic": "Logistic regression",
}

#: The multi-head model's recipe, one kept change at a time: ``(label, arguments of
#: run_classification the step adds)``. Each change was kept because it raised the
#: validation accuracy on the session split of twin generator version 3
#: (``studies/multihead_ablation.py`` lists the candidates tried, kept or not);
#: notebook 03 trains every prefix for its ablation table, and the whole recipe is
#: the model of the report. On version 4's ``default`` twin (``snr=0.12``) each change
#: still raises the validation accuracy, by about half a confidence interval each
#: (5.0, 6.4, 7.1 %; docs/results.md, "The recipe"); on ``full`` it is not measured.
MULTIHEAD_STEPS: tuple[tuple[str, dict], ...] = (
    ("handout model", {}),
    ("+ per-recording normalisation", {"normalization": "recording"}),
    ("+ ensemble over 3 seeds", {"n_seeds": 3}),
)


def multihead_recipe(steps=MULTIHEAD_STEPS) -> dict:
    """The arguments of :func:`run_classification` that ``steps`` add up to
    (``model_kwargs`` merged, the rest replaced)."""
    recipe: dict = {}
    for _, change in steps:
        for key, value in change.items():
            recipe[key] = {**recipe.get(key, {}), **value} if key == "model_kwargs" else value
    return recipe


#: :func:`multihead_recipe` of all :data:`MULTIHEAD_STEPS`: the multi-head model of
#: notebooks 03 and 05 and of the benchmarks.
MULTIHEAD_RECIPE: dict = multihead_recipe()


class ClassificationObjective:
    """Cross-entropy of the trial's own subject head (handout 4.3): Task 1's objective
    for :func:`eegkit.train.fit`.

    Parameters
    ----------
    subject_lookup : LongTensor, optional
        Maps the dataset's subject index to the model's head index
        (:func:`eegkit.models.subject_lookup`); None passes indices through.
    label_smoothing : float, default=0.0
    augment : sequence of str, default=()
        Augmentations of the training batches (:mod:`eegkit.data.augment`), drawn
        afresh each epoch from ``(seed, epoch)``; validation and test trials (the
        model in eval mode) are never augmented.
    sfreq : float, optional
        Sampling rate in Hz; needed with ``augment``.
    seed : int, default=0
    """

    def __init__(self, subject_lookup: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 augment: Sequence[str] = (), sfreq: float | None = None, seed: int = 0):
        self.subject_lookup = subject_lookup
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        if augment and sfreq is None:
            raise ValueError("augment needs sfreq, the sampling rate of the trials in Hz")
        self.augment, self.sfreq, self.seed = tuple(augment), sfreq, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's augmentations from ``(seed, epoch)`` (resumed runs match)."""
        self.augmentation = None
        if self.augment:
            from eegkit.data.augment import make_augmentation  # braindecode: 2 s to import

            self.augmentation = make_augmentation(self.augment, self.sfreq, self.seed, epoch)

    def subjects(self, batch) -> torch.Tensor:
        """The model's head index of each trial of ``batch``."""
        return head_indices(batch, self.subject_lookup)

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        X = batch["X"]
        if self.augmentation is not None and model.training:
            X, _ = self.augmentation(X, batch["y"])
        logits = model(X, self.subjects(batch))
        loss = self.loss(logits.float(), batch["y"])
        correct = int((logits.argmax(dim=1) == batch["y"]).sum())
        return StepOutput(loss, correct, len(batch["y"]))


@dataclass
class ClassificationRun:
    """Everything a notebook reports about one trained classifier."""

    model_name: str
    protocol: str
    fit: FitResult
    predictions: dict[str, np.ndarray]
    scores: pd.DataFrame
    per_subject: pd.DataFrame
    confusion: np.ndarray
    n_parameters: int
    #: Every trained copy of an ensemble over seeds (``fit`` is the first); empty for one model.
    members: list[FitResult] = field(default_factory=list)
    #: The validation trials' predictions, as ``predictions`` (None if not kept).
    val_predictions: dict[str, np.ndarray] | None = None
    #: Processes the members trained in side by side (1: one after the other here).
    n_workers: int = 1

    @property
    def label(self) -> str:
        return MODEL_LABELS.get(self.model_name, self.model_name)

    @property
    def n_members(self) -> int:
        """Models averaged in the prediction (1 without an ensemble)."""
        return max(1, len(self.members))

    @property
    def validation_accuracy(self) -> float:
        """Accuracy on the validation split of the kept model (best epoch; the averaged
        prediction of an ensemble), for choosing models."""
        if self.val_predictions is not None:
            out = self.val_predictions
            return float((out["logits"].argmax(axis=1) == out["y"]).mean())
        history = self.fit.history
        return float(history.loc[history["epoch"] == self.fit.best_epoch, "val_acc"].iloc[0])

    def validation_scores(self, n_boot: int = 1000, seed: int = 0) -> pd.Series:
        """Validation accuracy with its 95 % bootstrap interval: ``value``, ``ci_low``, ``ci_high``."""
        out = self.val_predictions
        if out is None:
            raise ValueError(f"{self.label} kept no validation predictions")
        correct = out["logits"].argmax(axis=1) == out["y"]
        low, high = bootstrap_ci(lambda i: correct[i].mean(), len(correct), n_boot, seed=seed)
        return pd.Series({"value": float(correct.mean()), "ci_low": low, "ci_high": high})

    @property
    def train_trials_per_second(self) -> float:
        """Trials of the training split the whole model learns from per second.

        An ensemble trains on every trial once per member. Each member's rate is
        measured in the process that trained it; with ``n_workers`` processes the
        members train in ``ceil(n / n_workers)`` rounds, each as long as a member
        takes on average, so the ensemble's rate is ``1 / (rounds * mean(1 / rate))``
        (one member's rate / n when they trained one after the other here). A member
        read back from a checkpoint keeps the rate of the run that trained it, so
        this assumes that run used the same ``workers``.
        """
        rates = [float(m.history["train_trials_per_second"].mean()) for m in self.members or [self.fit]]
        rounds = math.ceil(len(rates) / self.n_workers)
        return 1 / (rounds * float(np.mean([1 / rate for rate in rates])))

    def results_rows(self) -> pd.DataFrame:
        """The score table with model, protocol, size and cost columns added."""
        table = self.scores.copy()
        history = self.fit.history
        table.insert(0, "protocol", self.protocol)
        table.insert(0, "model", self.label)
        table["epochs"] = len(history)
        table["best_epoch"] = self.fit.best_epoch
        table["n_parameters"] = self.n_parameters
        table["train_trials_per_second"] = self.train_trials_per_second
        table["ensemble"] = self.n_members
        # restored from a checkpoint, not trained now
        table["reused_epochs"] = sum(m.reused_epochs for m in self.members or [self.fit])
        return table


def member_workers(workers: int | str, n_members: int, device: str = "auto") -> int:
    """How many processes train an ensemble's members side by side.

    Parameters
    ----------
    workers : int or "auto"
        Asked for; ``"auto"`` is one per member on a CPU and 1 on a GPU (the members
        would share one device there; a GPU is fast enough alone).
    n_members : int
    device : str, default="auto"
        The training device (:func:`eegkit.train.resolve_device`).

    Returns
    -------
    n_workers : int
        Between 1 and ``n_members``; 1 means in this process.
    """
    if workers == "auto":
        return 1 if resolve_device(device).type != "cpu" else n_members
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers={workers!r}: give a positive number of processes or 'auto'")
    return min(workers, n_members)


@dataclass
class _MemberJob:
    """One member of an ensemble: everything needed to build, train and apply it,
    small enough to send to a worker process (the EEG travels as file names)."""

    sets: SplitDatasets
    lookup: torch.Tensor
    model_name: str
    n_chans: int
    n_times: int
    sfreq: float
    subjects: tuple[str, ...]
    model_kwargs: dict
    augment: tuple[str, ...]
    label_smoothing: float
    alignment: dict
    config: TrainConfig
    checkpoint: Path | None
    name: str

    def run(self, progress: bool) -> tuple[FitResult, dict, dict]:
        """Train (or resume from the checkpoint) and predict the test and validation trials."""
        seed_everything(self.config.seed)  # the initial weights must not depend on earlier runs
        model = make_model(self.model_name, self.n_chans, self.n_times, self.sfreq,
                           subjects=self.sets.train_subjects, **self.model_kwargs)
        if self.alignment:
            if getattr(model, "subject_layer", None) is None:
                raise ValueError("align_subjects=True needs the multihead model with "
                                 "model_kwargs={'subject_layer': True}")
            with torch.no_grad():
                for index, matrix in self.alignment.items():
                    model.subject_layer.weights[self.subjects[index]].copy_(torch.from_numpy(matrix))
        objective = ClassificationObjective(self.lookup, label_smoothing=self.label_smoothing,
                                            augment=self.augment, sfreq=self.sfreq, seed=self.config.seed)
        result = fit(model, objective, self.sets.train, self.sets.val, self.config,
                     checkpoint=self.checkpoint, progress=progress, name=self.name)
        test = predict(result.model, self.sets.test, self.lookup, device=self.config.device)
        val = predict(result.model, self.sets.val, self.lookup, device=self.config.device)
        return result, test, val


def _run_member_in_worker(job: _MemberJob, threads: int) -> tuple[FitResult, dict, dict]:
    torch.set_num_threads(threads)
    result, test, val = job.run(progress=False)
    result.model = result.model.cpu()
    return result, test, val


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _train_in_processes(jobs: list[_MemberJob], n_workers: int, progress: bool, label: str) -> list:
    """Run ``jobs`` in ``n_workers`` spawned processes; results in the order of ``jobs``.

    The first member to fail stops the others and raises; so does an interrupt
    (Ctrl-C, or a notebook's stop button), which the workers would not see.
    """
    threads = max(1, usable_cpus() // n_workers)
    # spawn, not fork: a forked copy of a process that already ran torch's thread pools can hang.
    pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_run_member_in_worker, job, threads) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), disable=not progress,
                           desc=f"{label}: members trained in {n_workers} processes"):
            future.result()  # raises at once if this member failed
        results = [future.result() for future in futures]
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    device = resolve_device(jobs[0].config.device)
    for result, _, _ in results:  # the workers send models back on the CPU
        result.model.to(device)
    return results


def run_classification(
    data: EEGData,
    split: Split,
    model_name: str,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    model_kwargs: dict | None = None,
    augment: Sequence[str] = (),
    label_smoothing: float = 0.0,
    align_subjects: bool = False,
    normalization: str = "training",
    n_seeds: int = 1,
    n_boot: int = 1000,
    n_perm: int = 1000,
    progress: bool = True,
    workers: int | str = 1,
) -> ClassificationRun:
    """Train ``model_name`` on ``split.train`` (early stopping on ``split.val``), score on ``split.test``.

    The per-channel normaliser is fitted on the training trials only. The
    multi-head model gets one head per subject of the training split; a test subject
    with no head (cross-subject protocol) is scored with the mean of all heads.

    Parameters
    ----------
    data : EEGData
    split : Split
    model_name : {"wang_fc", "eegnet", "shallow", "multihead", "lda", "logistic"}
        ``"lda"`` and ``"logistic"`` are the classical references of
        :mod:`eegkit.models.classical` (no training loop: ``config`` gives only the
        seed; the logistic regression's strength is chosen on ``split.val``).
    config : TrainConfig
    checkpoint_dir : path-like, optional
        Where ``<model>_<protocol>_<key>.pt`` is written each epoch; ``key`` hashes the
        data, the split, the model settings and the training config, so a finished
        checkpoint is reused only for the very same run.
    model_kwargs : dict, optional
        Extra arguments of the model.
    augment : sequence of str, default=()
        Augmentations of the training batches (:data:`eegkit.data.augment.AUGMENTATIONS`).
    label_smoothing : float, default=0.0
        Of the cross-entropy loss.
    align_subjects : bool, default=False
        Start the multi-head model's subject layer (``model_kwargs={"subject_layer":
        True}``) at each subject's Euclidean alignment, ``R^{-1/2}`` with ``R`` the
        mean spatial covariance of its training trials
        (:func:`eegkit.data.alignment.euclidean_alignment`).
    normalization : {"training", "recording", "recording_evoked", "aligned"}, default="training"
        How the networks' input is z-scored (:class:`eegkit.data.SplitDatasets`):
        per channel with training statistics, each recording (one subject's
        session) with its own statistics (after subtracting its mean trial with
        ``"recording_evoked"``), or each recording whitened by its own mean
        covariance (``"aligned"``).
    n_seeds : int, default=1
        Train this many copies, with seeds ``config.seed``, ``config.seed + 1``, ...
        (each with its own checkpoint; the first is the single model's), and predict
        with the mean of their probabilities: an ensemble over seeds, which averages
        out the part of each copy's overfitting that depends on its initial weights
        and batch order. ``fit`` is the first copy's; ``members`` holds all.
    n_boot, n_perm : int, default=1000
        Bootstrap resamples and label permutations of the scores.
    progress : bool, default=True
    workers : int or "auto", default=1
        Processes that train an ensemble's members side by side (each its own copy
        of the model, with ``usable_cpus() // workers`` torch threads); ``"auto"``: one
        per member on CPU, one on CUDA (:func:`member_workers`). A member trains the
        same run whichever process holds it (same seed, checkpoint and result up to
        float rounding); on a CPU a small model uses a second thread poorly, so two
        one-thread processes get more done than one two-thread process
        (``benchmarks/parallel_members.py``).

    Returns
    -------
    run : ClassificationRun
    """
    if model_name in CLASSICAL_MODELS:
        return _run_classical(data, split, model_name, config.seed, n_boot, n_perm)
    if n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds}: train at least one model")
    sets = SplitDatasets.from_split(data, split, normalization)
    lookup = subject_lookup(sets.train_subjects, data.subjects)
    training = {"augment": list(augment), "label_smoothing": label_smoothing,
                **({"align_subjects": True} if align_subjects else {}),
                **({"normalization": normalization} if normalization != "training" else {})}
    # One pass over the training trials serves every member.
    alignment = euclidean_alignment(sets.train) if align_subjects else {}
    jobs = []
    for member in range(n_seeds):
        member_config = replace(config, seed=config.seed + member)
        checkpoint = None
        if checkpoint_dir:
            key = run_key(data, split, {"model": model_name, "model_kwargs": model_kwargs or {},
                                        "config": asdict(member_config),
                                        # absent when unused, so older runs keep their keys
                                        **({"training": training}
                                           if augment or label_smoothing or align_subjects
                                           or normalization != "training" else {})})
            checkpoint = Path(checkpoint_dir) / f"{model_name}_{split.protocol}_{key}.pt"
        name = MODEL_LABELS.get(model_name, model_name) + (f" (seed {member_config.seed})" if n_seeds > 1 else "")
        jobs.append(_MemberJob(sets, lookup, model_name, data.n_chans, data.n_times, data.sfreq,
                               data.subjects, dict(model_kwargs or {}), tuple(augment), label_smoothing,
                               alignment, member_config, checkpoint, name))
    n_workers = member_workers(workers, n_seeds, config.device)
    if n_workers > 1:
        trained = _train_in_processes(jobs, n_workers, progress, MODEL_LABELS.get(model_name, model_name))
    else:
        trained = [job.run(progress) for job in jobs]
    members = [result for result, _, _ in trained]
    out, val = trained[-1][1], trained[-1][2]
    log_probas = [torch.log_softmax(torch.from_numpy(test["logits"]), dim=1) for _, test, _ in trained]
    val_log_probas = [torch.log_softmax(torch.from_numpy(v["logits"]), dim=1) for _, _, v in trained]
    if n_seeds > 1:  # the log of the mean probability: the ensemble's log-probabilities
        log_n = float(np.log(n_seeds))
        out["logits"] = (torch.logsumexp(torch.stack(log_probas), dim=0) - log_n).numpy()
        val["logits"] = (torch.logsumexp(torch.stack(val_log_probas), dim=0) - log_n).numpy()
    y_hat = out["logits"].argmax(axis=1)
    return ClassificationRun(
        model_name=model_name,
        protocol=split.protocol,
        fit=members[0],
        predictions=out,
        scores=score_table(out["y"], out["logits"], n_boot=n_boot, n_perm=n_perm, seed=config.seed),
        per_subject=per_subject_accuracy(out["y"], y_hat, out["subject"], data.subjects,
                                         n_boot=n_boot, seed=config.seed),
        confusion=confusion_matrix(out["y"], y_hat),
        n_parameters=sum(p.numel() for m in members for p in m.model.parameters()),
        members=members if n_seeds > 1 else [],
        val_predictions=val,
        n_workers=n_workers,
    )


def _run_classical(data: EEGData, split: Split, model_name: str, seed: int, n_boot: int,
                   n_perm: int) -> ClassificationRun:
    """Shrinkage LDA or logistic regression on binned, per-subject standardised features.

    Every statistic is fitted on ``split.train``; the logistic regression's C is the
    one of :data:`LOGISTIC_CS` with the best validation accuracy. The history holds
    one row: the chosen model's train and validation accuracy and log-loss.
    """
    import time

    trials = data.trials
    parts = {part: np.asarray(getattr(split, part)) for part in ("train", "val", "test")}
    subject = {part: trials["subject_id"].to_numpy()[rows] for part, rows in parts.items()}
    y = {part: trials["category_id"].to_numpy()[rows] for part, rows in parts.items()}
    Z = split_features(data, split)
    started = time.time()  # the fits, as for the networks: reading the trials is not counted
    fitted = []
    for C in (LOGISTIC_CS if model_name == "logistic" else (None,)):
        estimator = make_classical(model_name, C=C, seed=seed).fit(Z["train"], y["train"])
        fitted.append((float((estimator.predict(Z["val"]) == y["val"]).mean()), C, estimator))
    val_acc, C, estimator = max(fitted, key=lambda item: item[0])
    seconds = time.time() - started

    def log_loss(part):
        log_proba = estimator.predict_log_proba(Z[part])
        return float(-log_proba[np.arange(len(y[part])), np.searchsorted(estimator.classes_, y[part])].mean())

    history = pd.DataFrame([{
        "epoch": 1, "train_loss": log_loss("train"),
        "train_acc": float((estimator.predict(Z["train"]) == y["train"]).mean()),
        "val_loss": log_loss("val"), "val_acc": val_acc, "lr": float("nan"), "seconds": seconds,
        "train_trials_per_second": len(parts["train"]) / max(seconds, 1e-9),
    }])
    def predictions(part):
        # Log-probabilities over all categories; one never seen in training gets ~0 probability.
        logits = np.full((len(parts[part]), len(CATEGORIES)), np.log(1e-12), dtype=np.float32)
        logits[:, estimator.classes_] = estimator.predict_log_proba(Z[part])
        return {"logits": logits, "y": y[part], "subject": subject[part], "row": parts[part]}

    out = predictions("test")
    logits = out["logits"]
    y_hat = logits.argmax(axis=1)
    config = {"model": model_name, "C": C, "features": "50 ms bins, per-subject z-scored"}
    return ClassificationRun(
        model_name=model_name,
        protocol=split.protocol,
        fit=FitResult(estimator, history, best_epoch=1, stopped_early=False, train_seconds=seconds,
                      config=config),
        predictions=out,
        scores=score_table(out["y"], logits, n_boot=n_boot, n_perm=n_perm, seed=seed),
        per_subject=per_subject_accuracy(out["y"], y_hat, out["subject"], data.subjects, n_boot=n_boot, seed=seed),
        confusion=confusion_matrix(out["y"], y_hat),
        n_parameters=n_parameters(estimator),
        val_predictions=predictions("val"),
    )
