"""Which changes help the multi-head model? Each candidate alone, then the recipe, on validation.

Every candidate is one change to the handout's plain multi-head model (independent
linear heads, no subject layer, no augmentation), trained with the notebooks'
settings on the session split. The table gives each run's validation accuracy (the
number changes are kept or dropped on) beside its test accuracy with a 95 % CI,
the best epoch, the last epoch's training accuracy (how much it overfits) and the
training time. The last row is :data:`eegkit.classification.MULTIHEAD_RECIPE`, the
kept changes together, as notebooks 03 and 05 train it.

    python studies/multihead_ablation.py --preset default
    python studies/multihead_ablation.py --preset default --only "handout model" recipe
    python studies/multihead_ablation.py --protocol cross_subject --epochs 4 --on-recipe \
        --only "handout model" "readout: mean of the tokens" "readout: spatial filters" \
        "shared head + subject residual heads" "augmentation: time shift + channel dropout"

``--on-recipe`` applies each candidate to one model of the recipe (its changes
without the ensemble) instead of the handout's plain model, to ask what helps on
top of what is kept; "handout model" is then that single model.

Runs are cached in ``--checkpoint-dir`` (as ``make report`` caches them), so rows
already trained with the same settings are read back instead of trained again.
"""

from __future__ import annotations

import argparse
import copy
import time

import pandas as pd

import eegkit
from eegkit.classification import MULTIHEAD_RECIPE, multihead_recipe, run_classification
from eegkit.data.splits import make_split
from eegkit.train import TrainConfig

#: One change each, on top of the handout's plain model; ``config`` replaces
#: TrainConfig fields, the rest are arguments of run_classification.
CANDIDATES: dict[str, dict] = {
    "handout model": {},
    "shared head + subject residual heads": {"model_kwargs": {"shared_head": True}},
    "subject layer (learned, from identity)": {"model_kwargs": {"subject_layer": True}},
    "subject layer from Euclidean alignment (learned)": {"model_kwargs": {"subject_layer": True},
                                                         "align_subjects": True},
    "Euclidean alignment (fixed)": {"model_kwargs": {"subject_layer": "fixed"}, "align_subjects": True},
    "augmentation: time shift + channel dropout": {"augment": ["time_shift", "channels_dropout"]},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "per-recording normalisation": {"normalization": "recording"},
    "per-recording Euclidean alignment": {"normalization": "aligned"},
    "per-recording normalisation, evoked response removed": {"normalization": "recording_evoked"},
    "dropout 0.3": {"model_kwargs": {"dropout": 0.3}},
    "readout: mean of the tokens": {"model_kwargs": {"readout": "mean"}},
    "readout: spatial filters": {"model_kwargs": {"readout": "spatial"}},
    "weight decay 0.1": {"config": {"weight_decay": 0.1}},
    "recipe": MULTIHEAD_RECIPE,
}


def run(data, split, name: str, change: dict, args) -> dict:
    change = copy.deepcopy(change)
    config = TrainConfig(max_epochs=args.epochs, batch_size=64, lr=1e-3, seed=args.seed,
                         **change.pop("config", {}))
    started = time.time()
    result = run_classification(data, split, "multihead", config, args.checkpoint_dir, n_boot=1000,
                                n_perm=10, progress=False, **change)
    accuracy = result.scores.set_index("metric").loc["accuracy"]
    history = result.fit.history
    return {"change": name, "val_acc": result.validation_accuracy, "test_acc": accuracy["value"],
            "ci_low": accuracy["ci_low"], "ci_high": accuracy["ci_high"], "best_epoch": result.fit.best_epoch,
            "last_train_acc": float(history["train_acc"].iloc[-1]),
            "train_seconds": float(sum(m.history["seconds"].sum() for m in result.members or [result.fit])),
            "wall_seconds": time.time() - started,
            "reused_epochs": sum(m.reused_epochs for m in result.members or [result.fit])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--protocol", default="session")
    parser.add_argument("--checkpoint-dir", default="build/checkpoints")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--on-recipe", action="store_true",
                        help="apply each candidate to one model of the recipe, not the handout's")
    args = parser.parse_args()
    data = eegkit.open_dataset(args.data_dir, twin_preset=args.preset, seed=args.seed, subjects="handout")
    split = make_split(data.trials, args.protocol, seed=args.seed)
    rows = []
    base_change = {key: value for key, value in MULTIHEAD_RECIPE.items() if key != "n_seeds"}
    for name in args.only:
        change = CANDIDATES[name]
        if args.on_recipe and name != "recipe":
            change = multihead_recipe([("base", base_change), (name, change)])
        rows.append(run(data, split, name, change, args))
        print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    base = table.loc[table["change"] == "handout model", "val_acc"]
    if len(base):
        table["val_acc_change"] = table["val_acc"] - float(base.iloc[0])
    print(f"\n{args.preset} twin, seed {args.seed}, {args.protocol} split, {args.epochs} epochs"
          + (", each change on one model of the recipe:" if args.on_recipe else ":"))
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
