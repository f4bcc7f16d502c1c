"""One training loop for every model: AdamW, warm-up + cosine schedule, early stopping.

:func:`fit` trains any ``nn.Module`` with an *objective*, a callable
``objective(model, batch) -> StepOutput`` that computes the loss of one batch (see
:class:`eegkit.classification.ClassificationObjective` and
:class:`eegkit.retrieval.model.RetrievalObjective`, which plug in the same way). It is
seeded and deterministic on CPU, uses CUDA with mixed precision when present, shows a
tqdm bar per epoch, records a history of train/validation loss and accuracy, and
writes a checkpoint atomically after every epoch from which a run resumes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from eegkit._io import atomic_write, update_digest
from eegkit.data.loading import EEGData
from eegkit.data.splits import Split


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_key(data: EEGData, split: Split, settings: dict, state: dict[str, torch.Tensor] | None = None) -> str:
    """A short hash of everything that determines a training run's result.

    The data (root, size, subjects), the split's rows, the run's ``settings``
    (model, configs; anything JSON can write) and optional starting weights. A
    checkpoint named with it is reused only for the very same run.

    Returns
    -------
    key : str
        12 hex digits.
    """
    digest = hashlib.sha256(json.dumps({
        "root": str(Path(data.root).resolve()), "twin": data.twin, "n_trials": len(data),
        "subjects": data.subjects, **settings,
    }, sort_keys=True, default=str).encode())
    for rows in (split.train, split.val, split.test):
        digest.update(np.asarray(rows, dtype=np.int64).tobytes())
    return update_digest(digest, state or {}).hexdigest()[:12]


#: The pip command that replaces a CPU-only torch with a CUDA 12.x build of the same
#: version (also ``make venv TORCH_INDEX=...``; see the README).
CUDA_TORCH_INSTALL = ("pip install torch==2.13.0+cu128 "
                      "--index-url https://download.pytorch.org/whl/cu128")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device a ``device`` parameter asks for, checked before any training.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or ``"mps"``.

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        The device is not a torch device name, or this machine or this torch build
        cannot use it; the message says what to install or to pass ``device="auto"``.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu', "
                         "'cuda' or 'cuda:N'") from exc
    if chosen.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(
                f"device={str(device)!r} but this torch ({torch.__version__}) has no CUDA: "
                f"install a CUDA build ({CUDA_TORCH_INSTALL}; in the checkout, `make venv "
                "TORCH_INDEX=https://download.pytorch.org/whl/cu128`) or use device='auto'")
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} but torch {torch.__version__} finds no CUDA GPU "
                "(no GPU, or no working NVIDIA driver: check `nvidia-smi`); use "
                "device='auto' or 'cpu'")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r} but there are {torch.cuda.device_count()} CUDA "
                f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1}); use one of "
                "those or device='auto'")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r} but this machine or torch has no MPS "
                         "backend; use device='auto' or 'cpu'")
    return chosen


class SubjectBalancedSampler(Sampler[int]):
    """Visit every trial once per epoch, interleaving subjects round-robin.

    Each round takes one trial of every subject that has trials left, in a shuffled
    subject order, so each round of ``n_subjects`` consecutive trials holds one trial
    per subject (while all have trials left) and every head sees data in every batch
    of at least ``2 * n_subjects`` trials.

    Parameters
    ----------
    subjects : ndarray of int, shape (n_trials,)
        Subject index of each trial of the dataset.
    seed : int, default=0
    """

    def __init__(self, subjects: Sequence[int] | np.ndarray, seed: int = 0):
        self.subjects = np.asarray(subjects)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.subjects)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        queues = [rng.permutation(np.flatnonzero(self.subjects == s)).tolist()
                  for s in np.unique(self.subjects)]
        order: list[int] = []
        while any(queues):
            for q in rng.permutation(len(queues)):
                if queues[q]:
                    order.append(queues[q].pop())
        return iter(order)


@dataclass
class StepOutput:
    """What an objective returns for one batch.

    ``extra`` holds further counts of hits among the batch's trials (e.g. a
    retrieval objective's category-level hits); :func:`fit` sums them over an epoch
    and records each as ``train_<name>`` and ``val_<name>``, a share of the trials
    (validation batches hold twice as many trials, so in-batch scores there face
    more distractors).
    """

    loss: torch.Tensor
    n_correct: int = 0
    n: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def head_indices(batch: dict[str, torch.Tensor],
                 subject_lookup: torch.Tensor | None = None) -> torch.Tensor:
    """The model's head index of each trial of ``batch``.

    Parameters
    ----------
    batch : dict
        A batch of :func:`make_loader`; ``batch["subject"]`` is the dataset's subject
        index, shape (batch,).
    subject_lookup : LongTensor, optional
        Maps the dataset's subject index to the model's head index
        (:func:`eegkit.models.subject_lookup`); None passes indices through.

    Returns
    -------
    heads : LongTensor, shape (batch,)
    """
    subject = batch["subject"]
    if subject_lookup is not None:
        subject = subject_lookup.to(subject.device)[subject]
    return subject


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    Parameters
    ----------
    max_epochs : int, default=20
    batch_size : int, default=64
    lr : float, default=1e-3
        Peak learning rate of AdamW.
    weight_decay : float, default=1e-2
    warmup_epochs : float, default=1.0
        Linear warm-up, then cosine decay to zero at ``max_epochs``.
    patience : int, default=5
        Stop after this many epochs without a better validation loss.
    grad_clip : float, default=1.0
        Max gradient norm (0 disables).
    seed : int, default=0
    device : str, default="auto"
    amp : bool, default=True
        Mixed precision (bfloat16) on CUDA; ignored on CPU.
    subject_balanced : bool, default=True
        Use :class:`SubjectBalancedSampler` for the training batches.
    """

    max_epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    patience: int = 5
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    subject_balanced: bool = True


@dataclass
class FitResult:
    """A trained model (best validation epoch's weights) and its history."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    train_seconds: float = 0.0
    config: dict = field(default_factory=dict)
    #: Epochs restored from a checkpoint of an earlier run instead of trained in this
    #: call (their history, times included, is that run's); 0 when trained afresh.
    reused_epochs: int = 0


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    # numpy's stack: torch.stack of many small tensors was measured at 0.3-0.9 s per
    # batch with 2 intra-op threads on a busy 2-core machine, numpy's at ~10 ms.
    return {key: torch.from_numpy(np.stack([item[key].numpy() for item in items])) for key in items[0]}


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False,
                sampler: Sampler | None = None, seed: int = 0) -> DataLoader:
    """A DataLoader that reads whole batches at once (``dataset.__getitems__``)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, collate_fn=_collate, generator=generator)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of each step: linear warm-up, then cosine decay to 0.

    For ``torch.optim.lr_scheduler.LambdaLR``; every training loop of eegkit (Task 1,
    Task 2B and the twin CLIP's pretraining) uses it.

    Parameters
    ----------
    warmup_steps : int
        Steps of linear warm-up (at least 1).
    total_steps : int
        Steps in all; the factor is 0 from there on.
    """
    warmup = max(1, int(warmup_steps))
    total = max(warmup + 1, int(total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _lr_lambda(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    return warmup_cosine(int(config.warmup_epochs * steps_per_epoch), config.max_epochs * steps_per_epoch)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def evaluate_loss(model: nn.Module, objective, loader: DataLoader, device: torch.device,
                  amp: bool = False, with_extra: bool = False) -> tuple:
    """Mean loss and accuracy of ``objective`` over a loader, without gradients.

    With ``with_extra`` a third item: each of the objective's ``StepOutput.extra``
    counts as a share of the items (a dict, empty when it has none).
    """
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    extra: Counter = Counter()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for batch in loader:
            out = objective(model, _to_device(batch, device))
            total_loss += float(out.loss) * len(batch["X"])
            correct += out.n_correct
            extra.update(out.extra)
            count += len(batch["X"])
    result = (total_loss / max(count, 1), correct / max(count, 1))
    return (*result, {k: v / max(count, 1) for k, v in extra.items()}) if with_extra else result


def fit(
    model: nn.Module,
    objective: Callable[[nn.Module, dict], StepOutput],
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    name: str = "",
) -> FitResult:
    """Train ``model`` on ``train_set``, early-stopping on ``val_set``'s loss.

    Parameters
    ----------
    model : nn.Module
    objective : callable
        ``objective(model, batch) -> StepOutput``; its ``set_epoch(epoch)`` is called
        before each epoch when it has one.
    train_set, val_set : Dataset
        Items are dicts of tensors (:class:`eegkit.data.torchdata.EEGTrialDataset`).
    config : TrainConfig, optional
    checkpoint : path-like, optional
        Written atomically after every epoch (model, optimiser, schedule, history,
        best weights, RNG state). If it exists and ``resume``, training continues
        from it; a finished run is returned as is.
    resume : bool, default=True
    progress : bool, default=True
        A tqdm bar per epoch.
    name : str, default=""
        Label of the progress bar.

    Returns
    -------
    result : FitResult
        ``model`` holds the weights of the best validation epoch.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    amp = config.amp and device.type == "cuda"
    seed_everything(config.seed)
    deterministic = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also NaN-fills every new tensor (5-15 % of a CPU step, measured
    # in benchmarks/profile_multihead.py); results do not depend on it.
    torch.utils.deterministic.fill_uninitialized_memory = False
    model.to(device)

    sampler = None
    if config.subject_balanced and hasattr(train_set, "subject_index"):
        sampler = SubjectBalancedSampler(train_set.subject_index, seed=config.seed)
    train_loader = make_loader(train_set, config.batch_size, shuffle=True, sampler=sampler, seed=config.seed)
    val_loader = make_loader(val_set, 2 * config.batch_size)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, len(train_loader)))

    state = {"epoch": -1, "history": [], "best_loss": math.inf, "best_epoch": -1,
             "best_state": None, "bad_epochs": 0, "stopped_early": False, "train_seconds": 0.0}
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"].cpu())  # map_location may have moved it
        if "cuda_rng" in saved and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda_rng"]])
        state = saved["state"]
    reused_epochs = len(state["history"])

    try:
        for epoch in range(state["epoch"] + 1, config.max_epochs):
            if state["stopped_early"]:
                break
            if hasattr(objective, "set_epoch"):  # e.g. a KD warm-up in the first epochs
                objective.set_epoch(epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            else:  # the shuffle order depends on the epoch alone, so a resumed run matches
                train_loader.generator.manual_seed(config.seed * 100_003 + epoch)
            model.train()
            started = time.time()
            total_loss, correct, count = 0.0, 0, 0
            extra: Counter = Counter()
            bar = tqdm(train_loader, desc=f"{name} epoch {epoch + 1}/{config.max_epochs}",
                       leave=False, disable=not progress)
            for batch in bar:
                batch = _to_device(batch, device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    out = objective(model, batch)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                n = len(batch["X"])
                total_loss += float(out.loss.detach()) * n
                correct += out.n_correct
                extra.update(out.extra)
                count += n
                bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.3f}")
            seconds = time.time() - started
            val_loss, val_acc, val_extra = evaluate_loss(model, objective, val_loader, device, amp,
                                                         with_extra=True)
            state["history"].append({
                "epoch": epoch + 1, "train_loss": total_loss / count, "train_acc": correct / count,
                "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                "seconds": seconds, "train_trials_per_second": count / seconds,
                **{f"train_{k}": v / count for k, v in extra.items()},
                **{f"val_{k}": v for k, v in val_extra.items()},
            })
            state["train_seconds"] += seconds
            if val_loss < state["best_loss"]:
                state.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0,
                             best_state=copy.deepcopy(model.state_dict()))
            else:
                state["bad_epochs"] += 1
                state["stopped_early"] = state["bad_epochs"] >= config.patience
            state["epoch"] = epoch
            if progress:
                tqdm.write(f"{name} epoch {epoch + 1}: train loss {total_loss / count:.3f} "
                           f"acc {correct / count:.3f} | val loss {val_loss:.3f} acc {val_acc:.3f}")
            if checkpoint is not None:
                snapshot = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                            **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
                            "state": state, "config": asdict(config)}
                atomic_write(checkpoint, lambda tmp: torch.save(snapshot, tmp))
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill

    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    return FitResult(model, pd.DataFrame(state["history"]), state["best_epoch"],
                     state["stopped_early"], state["train_seconds"], asdict(config),
                     reused_epochs=reused_epochs)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, subject_lookup: torch.Tensor | None = None,
            batch_size: int = 128, device: str = "auto") -> dict[str, np.ndarray]:
    """Logits of every trial of a dataset, with its labels.

    Returns
    -------
    out : dict
        ``logits`` (n_trials, n_outputs) float32, ``y``, ``subject`` (dataset index),
        ``row`` (trial-table row), each (n_trials,).
    """
    dev = resolve_device(device)
    model.to(dev).eval()
    parts: dict[str, list] = {"logits": [], "y": [], "subject": [], "row": []}
    for batch in make_loader(dataset, batch_size):
        X = batch["X"].to(dev)
        logits = model(X, head_indices(batch, subject_lookup).to(dev))
        parts["logits"].append(logits.float().cpu().numpy())
        for key in ("y", "subject", "row"):
            parts[key].append(batch[key].numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}
