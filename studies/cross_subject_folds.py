"""Across subjects with every subject held out once (leave one subject out).

Notebook 03's cross-subject protocol tests one subject (sub-29; sub-28 validates).
On the default twin that is 500 trials, too few to separate models 2 points apart.
Here each subject in turn is the test subject and the one before it (in sorted
order, cyclically) the validation subject; every model is trained on the other 11
with the notebook's settings (the multi-head model is the recipe of
``eegkit.classification.MULTIHEAD_RECIPE``, ``--epochs`` as notebook 03's
``secondary_max_epochs``). The pooled test trials of all folds give each model's
accuracy with a 95 % bootstrap CI, and the multi-head model's paired difference
with every other model (bootstrap over the same trials), with the folds it wins.

    python studies/cross_subject_folds.py --preset default --epochs 4 \
        --models multihead lda logistic wang_fc --workers auto --out folds.csv

It trains 13 times as much as the notebook's protocol: 38 min on 2 CPU cores at the
default size (the multi-head ensemble 2.5 min a fold). ``--folds N`` runs the first
N folds only. ``--out`` is the per-trial table (``fold``, ``model``,
``test_subject``, ``trial``, ``row``, ``label``, ``prediction``, ``correct``),
rewritten atomically after each fold; run again with the same ``--out``, the script
keeps the (fold, model) pairs it holds and trains only the others.

Two intervals for each paired difference: one resamples test trials (how sure we
are about these 13 subjects), the other resamples the folds, i.e. subjects (how
sure we are about a new subject; wider).

Each CSV row records the twin's ``seed``, so ``--summarise`` can also pool runs on
different twins (``--seed 0`` and ``--seed 1``: 26 held-out subjects of two cohorts);
a fold is then one (seed, held-out subject), and the subject-level interval
resamples all of them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import eegkit
from eegkit.classification import MODEL_LABELS, MULTIHEAD_RECIPE, run_classification
from eegkit.data.splits import make_split
from eegkit.metrics.classification import bootstrap_ci
from eegkit.train import TrainConfig


def summarise(trials: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pooled accuracy per model, and the multi-head model's paired difference with each other.

    Parameters
    ----------
    trials : DataFrame
        One row per (model, test trial): ``fold``, ``model``, ``trial``, ``correct``,
        ``row`` or ``label``, and optionally ``seed`` (the twin's; then a fold is a
        (seed, fold) pair, so runs on several twins pool). Every model must have the
        same folds and, in each, the same test trials in the same order (else
        ValueError).
    n_boot : int, default=1000
        Bootstrap resamples of each interval.
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    accuracy : DataFrame
        ``model``, ``accuracy``, ``ci_low``, ``ci_high`` (95 %, resampling trials),
        ``n_trials``, ``n_folds``.
    paired : DataFrame
        ``model`` (the other model), ``difference`` (multi-head minus it, in
        accuracy), ``ci_low``, ``ci_high`` (resampling the same trials of both),
        ``ci_low_subjects``, ``ci_high_subjects`` (resampling whole folds, i.e.
        test subjects), ``folds_won`` (folds where the multi-head model is strictly
        above it), ``n_folds``.
    """
    trials, labels = _fold_index(trials)
    _check_paired(trials, labels)
    correct = trials.pivot_table(index=["fold", "trial"], columns="model", values="correct")
    rows = []
    for model in correct.columns:
        hits = correct[model].to_numpy()
        low, high = bootstrap_ci(lambda i, h=hits: h[i].mean(), len(hits), n_boot, seed=seed)
        rows.append({"model": model, "accuracy": hits.mean(), "ci_low": low, "ci_high": high,
                     "n_trials": len(hits), "n_folds": correct.index.get_level_values("fold").nunique()})
    accuracy = pd.DataFrame(rows).sort_values("accuracy", ascending=False, ignore_index=True)
    multi = MODEL_LABELS["multihead"]
    paired = []
    if multi in correct.columns:
        by_fold = correct.groupby(level="fold").mean()
        for model in correct.columns.drop(multi):
            diff = (correct[multi] - correct[model]).to_numpy()
            low, high = bootstrap_ci(lambda i, d=diff: d[i].mean(), len(diff), n_boot, seed=seed)
            # folds hold equally many trials here, so the mean over folds is the pooled mean
            fold_diff = (by_fold[multi] - by_fold[model]).to_numpy()
            s_low, s_high = bootstrap_ci(lambda i, d=fold_diff: d[i].mean(), len(fold_diff), n_boot, seed=seed)
            paired.append({"model": model, "difference": diff.mean(), "ci_low": low, "ci_high": high,
                           "ci_low_subjects": s_low, "ci_high_subjects": s_high,
                           "folds_won": int((fold_diff > 0).sum()), "n_folds": len(by_fold)})
    return accuracy, pd.DataFrame(paired)


def _fold_index(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Number the folds 0, 1, ... in (seed, fold) order, and name each for errors.

    Folds of different twins (the ``seed`` column, when the table has one) are
    different held-out subjects. Returns ``trials`` with ``fold`` replaced by that
    number, and the names ("fold 3", or "seed 1, fold 3").
    """
    seeds = pd.Series(0, index=trials.index)
    if "seed" in trials:
        if trials["seed"].isna().any():
            raise ValueError("some rows have no seed: pool CSVs that all record it (rerun the older "
                             "ones, or add the seed they were run with as a 'seed' column)")
        seeds = trials["seed"].astype(int)
    keys = list(zip(seeds, trials["fold"].astype(int)))
    number = {key: i for i, key in enumerate(sorted(set(keys)))}
    names = {i: (f"seed {s}, " if "seed" in trials else "") + f"fold {f + 1}" for (s, f), i in number.items()}
    return trials.assign(fold=[number[key] for key in keys]), names


def _check_paired(trials: pd.DataFrame, names: dict[int, str]) -> None:
    """Raise unless every model has each fold once, the same folds, and the same test
    trials in the same order (pooled CSVs may come from other runs)."""
    twice = trials.duplicated(["fold", "model", "trial"])
    if twice.any():
        first = trials[twice].iloc[0]
        raise ValueError(f"{first['model']} has {names[first['fold']]} more than once: pool each model's "
                         "run once (runs on different twins need a 'seed' column)")
    folds = trials.groupby("model")["fold"].agg(lambda f: tuple(sorted(set(f))))
    if folds.nunique() > 1:
        raise ValueError("the models cover different folds: "
                         + "; ".join(f"{m}: {len(f)} folds" for m, f in folds.items()))
    # the rows of the trial table where the CSV has them (older ones only have the labels)
    key = "row" if "row" in trials and trials["row"].notna().all() else "label"
    for fold, part in trials.groupby("fold"):
        same = part.pivot_table(index="trial", columns="model", values=key)
        if same.isna().any().any() or not same.eq(same.iloc[:, 0], axis=0).all().all():
            raise ValueError(f"{names[fold]}: the models' test trials differ (other twin, seed or split?)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--models", nargs="*", default=["multihead", "lda", "logistic", "wang_fc"])
    parser.add_argument("--workers", default="auto",
                        help="processes for the ensemble's members (run_classification's workers=)")
    parser.add_argument("--folds", type=int, default=0, help="run the first N folds only (0: all)")
    parser.add_argument("--out", default="", help="per-trial CSV, rewritten after each fold")
    parser.add_argument("--summarise", nargs="*", default=[], metavar="CSV",
                        help="train nothing: pool the per-trial CSVs of earlier runs (e.g. the "
                             "classical models on a CPU, the networks on a GPU) and print the tables")
    args = parser.parse_args()
    if args.summarise:
        print_summary(pd.concat([pd.read_csv(path) for path in args.summarise], ignore_index=True),
                      ", ".join(args.summarise))
        return

    data = eegkit.open_dataset(args.data_dir, twin_preset=args.preset, seed=args.seed)
    subjects = sorted(data.trials["subject"].unique())
    folds = range(args.folds or len(subjects))
    config = TrainConfig(max_epochs=args.epochs, patience=args.epochs, seed=args.seed,
                         batch_size=args.batch_size, lr=args.lr)
    workers = args.workers if args.workers == "auto" else int(args.workers)
    parts = []
    if args.out and Path(args.out).is_file():  # a stopped run: keep what it finished
        parts = [pd.read_csv(args.out)]
        if "seed" not in parts[0]:  # written before the column existed: by a run with this --seed
            parts[0].insert(0, "seed", args.seed)
        if set(parts[0]["seed"]) != {args.seed}:
            raise SystemExit(f"{args.out} holds folds of twin seed {sorted(set(parts[0]['seed']))}, not "
                             f"{args.seed}: give this run another --out")
        print(f"{args.out}: keeping {parts[0].groupby(['fold', 'model']).ngroups} (fold, model) runs")
    done = set(map(tuple, parts[0][["fold", "model"]].drop_duplicates().to_numpy())) if parts else set()
    for fold in folds:
        test, val = subjects[fold], subjects[fold - 1]
        split = make_split(data.trials, "cross_subject", val_subjects=[val], test_subjects=[test],
                           seed=args.seed)
        for model in args.models:
            if (fold, MODEL_LABELS.get(model, model)) in done:
                continue
            started = time.time()
            recipe = MULTIHEAD_RECIPE if model == "multihead" else {}
            run = run_classification(data, split, model, config, n_boot=20, n_perm=20,  # pooled below
                                     progress=False, workers=workers, **recipe)
            out = run.predictions
            y_hat = out["logits"].argmax(axis=1)
            parts.append(pd.DataFrame({
                "seed": args.seed, "fold": fold, "model": run.label, "test_subject": test, "trial": np.arange(len(y_hat)),
                "row": out["row"], "label": out["y"], "prediction": y_hat, "correct": (y_hat == out["y"]).astype(float)}))
            print(f"fold {fold + 1}/{len(folds)} (test {test}, validation {val}): {run.label} "
                  f"{parts[-1]['correct'].mean():.3f} (validation {run.validation_accuracy:.3f}) "
                  f"in {time.time() - started:.0f} s", flush=True)
        if args.out:
            table = pd.concat(parts, ignore_index=True)
            partial = Path(f"{args.out}.partial")  # written whole, then renamed: never half a CSV
            table.to_csv(partial, index=False)
            os.replace(partial, args.out)
    print_summary(pd.concat(parts, ignore_index=True),
                  f"{data.source}; leave one subject out, {len(folds)} folds; {args.epochs} epochs")


def print_summary(trials: pd.DataFrame, source: str) -> None:
    """Print :func:`summarise`'s two tables under a line saying where ``trials`` came from."""
    accuracy, paired = summarise(trials)
    print(f"\n{source}\n")
    print(accuracy.to_markdown(index=False, floatfmt=".3f"))
    if len(paired):
        print("\nmulti-head model minus each other model, paired over the same test trials "
              "(ci_*: resampling trials; ci_*_subjects: resampling the test subjects):\n")
        print(paired.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
