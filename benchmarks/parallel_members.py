"""Train an ensemble's members in one process or side by side in several: wall time and agreement.

The multi-head recipe (``MULTIHEAD_RECIPE``: 3 members) is trained on the session
split with ``run_classification(..., workers=N)`` for each N given, one after the
other in this run, without checkpoints. ``workers=1`` trains the members one after
the other in this process with all torch threads; ``workers=N`` spawns N processes
with ``usable_cpus() // N`` threads each. Prints each setting's wall time, its ratio to
``workers=1``, the test accuracy and how far its ensemble log-probabilities are from
``workers=1``'s (the same runs, so only float rounding may differ).

    python benchmarks/parallel_members.py --preset default --epochs 1 --workers 1 2 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import eegkit
from eegkit.classification import MULTIHEAD_RECIPE, run_classification
from eegkit.data.splits import make_split
from eegkit.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--protocol", default="session")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    data = eegkit.open_dataset(args.data_dir, twin_preset=args.preset, seed=args.seed, subjects="handout")
    split = make_split(data.trials, args.protocol, seed=args.seed)
    config = TrainConfig(max_epochs=args.epochs, batch_size=64, lr=1e-3, seed=args.seed, device="cpu")
    print(f"{data.source}; {split.protocol} split, {len(split.train)} training trials, "
          f"{MULTIHEAD_RECIPE.get('n_seeds', 1)} members, {args.epochs} epoch(s), "
          f"{torch.get_num_threads()} torch threads in this process")
    rows = []
    for workers in args.workers:
        started = time.perf_counter()
        run = run_classification(data, split, "multihead", config, None, n_boot=100, n_perm=1,
                                 progress=False, workers=workers, **MULTIHEAD_RECIPE)
        seconds = time.perf_counter() - started
        accuracy = float((run.predictions["logits"].argmax(axis=1) == run.predictions["y"]).mean())
        rows.append((workers, seconds, accuracy, run.predictions["logits"]))
        print(f"workers={workers}: {seconds:.1f} s, test accuracy {accuracy:.3f}", flush=True)
    base_seconds, base_logits = rows[0][1], rows[0][3]
    print(f"\n{'workers':>7} {'seconds':>8} {'x time':>7} {'accuracy':>8} {'max |d log p|':>14}")
    for workers, seconds, accuracy, logits in rows:
        print(f"{workers:>7} {seconds:>8.1f} {seconds / base_seconds:>7.2f} {accuracy:>8.3f} "
              f"{float(np.abs(logits - base_logits).max()):>14.2e}")


if __name__ == "__main__":
    main()
