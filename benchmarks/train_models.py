"""Train every classifier on the same split, for the same epochs or the same time.

For each model: test accuracy (95 % CI), training trials per second and memory, each
model in its own process so that the peaks do not mix. Then the multi-head model's
ratios to the EEGNet and ShallowConvNet baselines, time per trial included (the
performance target: at most 2x the baseline's, at equal batch size on CPU).

    python benchmarks/train_models.py --preset default --epochs 6
    python benchmarks/train_models.py --preset default --budget-seconds 600
    python benchmarks/train_models.py --preset full --epochs 8 --ceiling --out full.csv

The multi-head model is the notebooks' (``eegkit.classification.MULTIHEAD_RECIPE``;
``--plain-multihead`` trains the handout's model without it); shrinkage LDA and
logistic regression are the classical references. ``--ceiling`` adds the twin's
ideal observer and each model's fraction of it, and the last lines compare the
multi-head model with the best other model (its CI lower bound against that
model's point estimate) and with EEGNet and ShallowConvNet (time per trial).

Two modes:

* ``--epochs N`` (default): every model trains N epochs (no early stopping) and is
  scored with the weights of its best validation epoch, as :func:`eegkit.train.fit`
  returns them.
* ``--budget-seconds S``: every model gets S seconds of training on the same
  cores, the number a student with a laptop cares about. The budget counts the
  training batches (data loading, forward, backward, optimiser), as the trials/s
  column does; validation passes, checkpoints and scoring are outside it. Epochs
  run until the budget is spent and the epoch in progress is *cut*: no batch starts
  after S seconds, so every model trains for S seconds at most (less only if it
  finishes ``--epochs`` epochs first). The cut state is validated like a finished
  epoch, and the model is scored with the weights of the best validation epoch,
  the partial one included. The learning-rate schedule is ``fit``'s (warm-up, then
  cosine decay) with its progress measured by epochs or by the clock, whichever is
  further along: a model that cannot finish ``--epochs`` (default 20 in this mode)
  epochs in S seconds reaches a learning rate of zero when its time is up, as if
  its ``max_epochs`` had been planned for the budget; ``--epoch-schedule`` keeps
  the plain epoch-based schedule. Budget runs depend on the clock, so they are not
  bit-reproducible.

Memory: ``peak_rss_mb`` is the process's peak resident memory (``ru_maxrss``; it
includes loading and normalising the data and the memory-mapped trials, so it is
much the same for every model); ``train_peak_anon_mb`` is the peak of anonymous
resident memory (RssAnon, sampled every 10 ms, Linux only) while training, i.e.
the data structures, the model, its activations and optimiser state, without the
memory-mapped files.

``--no-nan-fill`` turns off torch's NaN filling of new tensors, which
``torch.use_deterministic_algorithms(True)`` in ``fit`` switches on
(``torch.utils.deterministic.fill_uninitialized_memory``), to measure its cost.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

import pandas as pd

MODELS = ("wang_fc", "shallow", "eegnet", "lda", "logistic", "multihead")
MULTIHEAD = "Multi-head CNN+Transformer"
BASELINES = ("EEGNet", "ShallowConvNet")


class _AnonPeak:
    """Peak anonymous resident memory (MB) of this process while running, sampled."""

    def __init__(self, interval_seconds: float = 0.01):
        self.interval_seconds = interval_seconds
        self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def read_mb() -> float:
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.is_set():
            value = self.read_mb()
            if not value <= self.peak_mb:  # also replaces the initial NaN
                self.peak_mb = value
            self._stop.wait(self.interval_seconds)

    def __enter__(self) -> _AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class _BudgetSpent(Exception):
    """Raised by :class:`_BudgetObjective` when no batch may start any more."""


class _BudgetObjective:
    """Wraps an objective; stops training once ``budget_seconds`` of training are spent.

    Training time runs from each ``set_epoch`` (called by ``fit`` right before the
    epoch's first batch is loaded) to the epoch's first validation call.
    """

    def __init__(self, objective, budget_seconds: float):
        self.objective = objective
        self.budget_seconds = budget_seconds
        self.spent = 0.0  # training seconds of finished epochs
        self.spent_before_epoch = 0.0
        self.epoch_started: float | None = None
        self.partial = {"loss": 0.0, "correct": 0, "n": 0}  # of the epoch in progress
        self.lr_factor = float("nan")  # set by _budget_lr_lambda

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.objective, "set_epoch"):
            self.objective.set_epoch(epoch)
        self.partial = {"loss": 0.0, "correct": 0, "n": 0}
        self.spent_before_epoch = self.spent
        self.epoch_started = time.time()

    def training_seconds(self) -> float:
        if self.epoch_started is None:
            return self.spent
        return self.spent + time.time() - self.epoch_started

    def __call__(self, model, batch):
        if not model.training:  # validation: the training epoch has ended
            if self.epoch_started is not None:
                self.spent += time.time() - self.epoch_started
                self.epoch_started = None
            return self.objective(model, batch)
        if self.training_seconds() >= self.budget_seconds:
            self.spent = self.training_seconds()
            self.epoch_started = None
            raise _BudgetSpent
        out = self.objective(model, batch)
        n = len(batch["y"])
        self.partial["loss"] += float(out.loss.detach()) * n
        self.partial["correct"] += out.n_correct
        self.partial["n"] += n
        return out


def _budget_lr_lambda(budget: _BudgetObjective, warmup_share: float = 0.1):
    """``fit``'s warm-up + cosine schedule, ending when the budget or the epochs end.

    Each step's progress is the larger of the step-based progress of
    :func:`eegkit.train._lr_lambda` (cosine to zero at ``max_epochs``) and the
    share of the budget spent, so a model too slow to finish ``max_epochs`` reaches
    a learning rate of zero when its time is up. The warm-up ends after
    ``warmup_epochs`` or ``warmup_share`` of the budget, whichever comes first.
    """

    def make(config, steps_per_epoch: int):
        warmup = max(1, int(config.warmup_epochs * steps_per_epoch))
        total = max(warmup + 1, config.max_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            clock = budget.training_seconds() / budget.budget_seconds
            if step < warmup and clock < warmup_share:
                budget.lr_factor = max((step + 1) / warmup, clock / warmup_share)
            else:
                progress = max((step - warmup) / (total - warmup), clock)
                budget.lr_factor = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            return budget.lr_factor

        return factor

    return make


def _budget_fit(budget_seconds: float, budget_schedule: bool = True):
    """A stand-in for :func:`eegkit.train.fit` that trains ``budget_seconds`` at most.

    ``fit`` runs with a wrapped objective that raises :class:`_BudgetSpent` when the
    budget is spent, and with a checkpoint per epoch, from which the finished epochs'
    history and best weights are read back; the cut epoch is validated here.
    """
    import torch

    from eegkit import train

    def fit(model, objective, train_set, val_set, config=None, checkpoint=None,
            resume=True, progress=True, name=""):
        config = config or train.TrainConfig()
        budget = _BudgetObjective(objective, budget_seconds)
        epoch_schedule = train._lr_lambda
        if budget_schedule:
            train._lr_lambda = _budget_lr_lambda(budget)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "budget.pt"
            try:
                result = train.fit(model, budget, train_set, val_set, config,
                                   checkpoint=path, resume=False, progress=progress,
                                   name=name)
                result.train_seconds = budget.spent
                return result
            except _BudgetSpent:
                saved = (torch.load(path, map_location="cpu", weights_only=True)
                         if path.is_file() else None)
            finally:
                train._lr_lambda = epoch_schedule
        state = saved["state"] if saved else {"history": [], "best_loss": math.inf,
                                              "best_state": None, "best_epoch": -1}
        history = list(state["history"])
        part = budget.partial
        if part["n"]:  # the cut epoch, validated like a finished one
            device = train.resolve_device(config.device)
            amp = config.amp and device.type == "cuda"
            val_loader = train.make_loader(val_set, 2 * config.batch_size)
            val_loss, val_acc = train.evaluate_loss(model, objective, val_loader,
                                                    device, amp)
            seconds = budget.spent - budget.spent_before_epoch
            history.append({
                "epoch": len(history) + part["n"] / len(train_set),
                "train_loss": part["loss"] / part["n"],
                "train_acc": part["correct"] / part["n"],
                "val_loss": val_loss, "val_acc": val_acc,
                "lr": config.lr * budget.lr_factor,
                "seconds": seconds, "train_trials_per_second": part["n"] / seconds,
            })
            if val_loss < state["best_loss"]:
                state.update(best_loss=val_loss, best_epoch=history[-1]["epoch"],
                             best_state=None)  # None: keep the weights of the cut
        if state["best_state"] is not None:
            model.load_state_dict(state["best_state"])
        model.eval()
        return train.FitResult(model, pd.DataFrame(history), state["best_epoch"], False,
                               budget.spent,
                               {**vars(config), "budget_seconds": budget_seconds})

    return fit


def _train_one(args: dict, queue) -> None:
    import torch

    import eegkit
    from eegkit import classification
    from eegkit.data.splits import make_split
    from eegkit.train import TrainConfig

    torch.set_num_threads(args["threads"])
    if args["no_nan_fill"]:
        torch.utils.deterministic.fill_uninitialized_memory = False
    recipe = {}
    if args["model"] == "multihead" and not args["plain_multihead"]:
        recipe = classification.MULTIHEAD_RECIPE  # the model of the notebooks
    budget = args["budget_seconds"]
    if budget:
        # run_classification calls classification.fit, once per member of an ensemble:
        # the members share the budget
        classification.fit = _budget_fit(budget / recipe.get("n_seeds", 1), not args["epoch_schedule"])
    root = eegkit.resolve_data_root(args["data_dir"], twin_preset=args["preset"],
                                    seed=args["seed"])
    data = eegkit.load_dataset(root, subjects=args["subjects"])
    split = make_split(data.trials, args["protocol"], seed=args["seed"])
    config = TrainConfig(max_epochs=args["epochs"], patience=args["epochs"],
                         seed=args["seed"], batch_size=args["batch_size"],
                         lr=args["lr"])
    workers = args["workers"] if args["workers"] == "auto" else int(args["workers"])
    started = time.time()
    with _AnonPeak() as anon:
        run = classification.run_classification(data, split, args["model"], config,
                                             n_boot=500, n_perm=200, progress=False,
                                             workers=workers, **recipe)
    accuracy = run.scores.set_index("metric").loc["accuracy"]
    history = run.fit.history
    members = run.members or [run.fit]
    seconds = float(sum(m.history["seconds"].sum() for m in members))
    trained = float(sum((m.history["seconds"] * m.history["train_trials_per_second"]).sum()
                        for m in members))
    queue.put({
        "model": run.label + (f" ({run.n_members} seeds)" if run.n_members > 1 else ""),
        "test_accuracy": accuracy["value"],
        "ci_low": accuracy["ci_low"],
        "ci_high": accuracy["ci_high"],
        "val_accuracy": run.validation_accuracy,
        # the spread over test subjects (not meaningful when one subject is tested)
        "subject_min": float(run.per_subject["accuracy"].min()),
        "subject_max": float(run.per_subject["accuracy"].max()),
        "epochs": float(history["epoch"].iloc[-1]) if len(history) else 0.0,
        "train_seconds": seconds,
        # an ensemble trains on each trial once per member; members side by side in
        # worker processes: see ClassificationRun.train_trials_per_second
        "train_trials_per_second": (trained / seconds / run.n_members if run.n_workers == 1
                                    else run.train_trials_per_second),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_peak_anon_mb": anon.peak_mb,
        "n_parameters": run.n_parameters,
        "wall_seconds": time.time() - started,
        "source": data.source,
        # validation accuracy after each epoch, one list per member: is it still rising?
        "val_curves": [m.history["val_acc"].round(4).tolist() for m in members if "val_acc" in m.history],
    })


def _result_of(child, queue) -> dict | None:
    """The row ``child`` puts on ``queue``, or None if it dies first (no endless wait)."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not child.is_alive():
                try:  # it may have put its row just before exiting
                    return queue.get(timeout=1)
                except Empty:
                    return None


def _write_out(table: pd.DataFrame, args: dict) -> None:
    """``table`` with the run's seed, protocol and epochs, atomically to ``args["out"]``."""
    from eegkit._io import atomic_write_text

    written = table.assign(seed=args["seed"], protocol=args["protocol"],
                           max_epochs=args["epochs"], source=table["source"].iloc[0])
    atomic_write_text(Path(args["out"]), written.to_csv(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--subjects", default="handout")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs to train (default 6); with --budget-seconds, the "
                             "most epochs and the schedule's length (default 20)")
    parser.add_argument("--budget-seconds", type=float, default=0.0,
                        help="train each model for this many seconds (see above)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="session",
                        choices=["session", "within_session", "cross_subject"],
                        help="the split (eegkit.data.splits.make_split) every model is scored on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", default="1",
                        help="processes for an ensemble's members (run_classification's "
                             "workers=; each gets usable_cpus() // workers threads, not "
                             "--threads), or 'auto'; the memory columns then count this "
                             "process only, not the members' processes")
    parser.add_argument("--epoch-schedule", action="store_true",
                        help="with --budget-seconds: keep fit's schedule (cosine to "
                             "zero at --epochs) instead of ending it with the budget")
    parser.add_argument("--no-nan-fill", action="store_true")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--plain-multihead", action="store_true",
                        help="the handout's multi-head model without the recipe's changes")
    parser.add_argument("--ceiling", action="store_true",
                        help="add the twin's ideal observer and each model's fraction of it")
    parser.add_argument("--out", default="",
                        help="also write the results table to this CSV (atomically, "
                             "again after each model, so a run stopped part-way keeps "
                             "the finished ones), with the data source, seed, protocol "
                             "and epochs of the run")
    args = vars(parser.parse_args())
    if args["epochs"] is None:
        args["epochs"] = 20 if args["budget_seconds"] else 6
    if args["budget_seconds"] and args["workers"] != "1":
        parser.error("--budget-seconds patches the training loop of this process; "
                     "worker processes would not see it: leave --workers at 1")
    context = mp.get_context("spawn")
    rows, failed = [], []
    for model in args["models"]:
        queue = context.Queue()
        child = context.Process(target=_train_one,
                                args=({**args, "model": model}, queue))
        child.start()
        row = _result_of(child, queue)
        child.join()
        if row is None:  # its traceback is above; the other models still run
            failed.append(model)
            print(f"FAILED: {model} (exit code {child.exitcode})", flush=True)
            continue
        if child.exitcode != 0:
            print(f"warning: {model} sent its results but exited with code {child.exitcode}", flush=True)
        rows.append(row)
        # each result as it comes, so that a run stopped part-way keeps the finished models
        if args["out"]:
            _write_out(pd.DataFrame(rows).drop(columns="val_curves"), args)
        print(f"done: {row['model']} in {row['wall_seconds']:.0f} s: test accuracy "
              f"{row['test_accuracy']:.3f} ({row['ci_low']:.3f}-{row['ci_high']:.3f}), "
              f"validation {row['val_accuracy']:.3f}", flush=True)
    if not rows:
        sys.exit(f"every model failed: {', '.join(failed)}")
    curves = {row["model"]: row.pop("val_curves") for row in rows}
    table = pd.DataFrame(rows)
    from eegkit.ceiling import IDEAL_OBSERVER  # here, not at the top: spawned children import this file

    if args["ceiling"]:
        import eegkit
        from eegkit.ceiling import bayes_ceiling
        from eegkit.data.splits import make_split

        data = eegkit.open_dataset(args["data_dir"], twin_preset=args["preset"], seed=args["seed"],
                                   subjects=args["subjects"])
        split = make_split(data.trials, args["protocol"], seed=args["seed"])
        ceiling = bayes_ceiling(data, split, n_boot=500, seed=args["seed"])
        accuracy = ceiling.scores.set_index("metric").loc["accuracy"]
        table["fraction_of_ceiling"] = table["test_accuracy"] / accuracy["value"]
        table = pd.concat([table, pd.DataFrame([{
            "model": IDEAL_OBSERVER, "test_accuracy": accuracy["value"],
            "ci_low": accuracy["ci_low"], "ci_high": accuracy["ci_high"], "fraction_of_ceiling": 1.0,
            "source": table["source"].iloc[0]}])], ignore_index=True)
    if args["out"]:
        _write_out(table, args)
    if args["budget_seconds"]:
        mode = (f"budget {args['budget_seconds']:g} s of training per model (at most "
                f"{args['epochs']} epochs; the last epoch cut)")
    else:
        mode = f"{args['epochs']} epochs"
    print(f"\n{table.pop('source').iloc[0]}; {args['protocol']} split; {mode}; batch "
          f"{args['batch_size']}, {args['threads']} threads, {os.cpu_count()} CPUs"
          f"{'; NaN fill off' if args['no_nan_fill'] else ''}\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print("\nvalidation accuracy after each epoch (one line per ensemble member):")
    for model, members in curves.items():
        for curve in members:
            print(f"  {model}: " + " ".join(f"{acc:.3f}" for acc in curve))
    by_model = table.set_index("model")
    multiheads = [name for name in by_model.index if name.startswith(MULTIHEAD)]
    if multiheads:
        multi = by_model.loc[multiheads[0]]
        print()
        others = by_model.drop(index=multiheads + [IDEAL_OBSERVER], errors="ignore")
        if len(others):
            best = others["test_accuracy"].idxmax()
            rival = others.loc[best]
            print(f"multi-head / best other model ({best}): accuracy x{multi.test_accuracy / rival.test_accuracy:.2f}; "
                  f"multi-head CI lower bound {multi.ci_low:.3f} "
                  f"{'above' if multi.ci_low > rival.test_accuracy else 'NOT above'} its point estimate "
                  f"{rival.test_accuracy:.3f}")
        for baseline in BASELINES:
            if baseline in by_model.index:
                base = by_model.loc[baseline]
                speed = multi.train_trials_per_second / base.train_trials_per_second
                accuracy = multi.test_accuracy / base.test_accuracy
                memory = multi.peak_rss_mb / base.peak_rss_mb
                anon = multi.train_peak_anon_mb / base.train_peak_anon_mb
                print(f"multi-head / {baseline}: time per trial x{1 / speed:.2f} "
                      f"(target <= 2), training speed x{speed:.2f}, accuracy "
                      f"x{accuracy:.2f}, peak memory x{memory:.2f}, training anon "
                      f"memory x{anon:.2f}")
    if failed:
        sys.exit(f"\nfailed (traceback above): {', '.join(failed)}")


if __name__ == "__main__":
    main()
