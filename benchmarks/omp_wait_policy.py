"""Does ``OMP_WAIT_POLICY=PASSIVE`` slow training down? Side by side, in one run.

libgomp's default lets idle OpenMP threads spin before they sleep, which on a machine
whose cores are busy with other work steals them from the threads that have work
(notebook 02 was measured twice as slow that way). ``PASSIVE`` makes them sleep at
once. This script measures what that costs when the cores are free: each repeat runs
the same fixed workload, training steps of the multi-head model (batch 64, 122 x 500,
2 threads, as in ``profile_multihead.py``, without the profiler), once with the
default policy and once with ``PASSIVE``, alternating, each in its own process, and
prints the time per step of every run, the medians and their ratio, with the load
average before and after (other work on the machine shows there).

    python benchmarks/omp_wait_policy.py --repeats 3 --steps 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def _worker(steps: int, warmup: int, threads: int) -> None:
    import torch
    from torch import nn

    from eegkit.classification import ClassificationObjective
    from eegkit.data.channels import HANDOUT_SUBJECTS
    from eegkit.models import make_model
    from eegkit.train import TrainConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = make_model("multihead", 122, 500, 1000.0, subjects=HANDOUT_SUBJECTS).train()
    config = TrainConfig(batch_size=64)
    objective = ClassificationObjective()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    batches = [{"X": torch.randn(64, 122, 500), "y": torch.randint(0, 20, (64,)),
                "subject": torch.randperm(64) % len(HANDOUT_SUBJECTS)} for _ in range(2)]
    torch.use_deterministic_algorithms(True, warn_only=True)  # as fit() does

    def step(batch):
        loss = objective(model, batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    for i in range(warmup):
        step(batches[i % 2])
    started = time.perf_counter()
    for i in range(steps):
        step(batches[i % 2])
    print(f"{(time.perf_counter() - started) / steps * 1e3:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (default: 3)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps, args.warmup, args.threads)
        return
    settings = {"default (spinning)": None, "OMP_WAIT_POLICY=PASSIVE": "PASSIVE"}
    times: dict[str, list[float]] = {name: [] for name in settings}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)")
    for repeat in range(args.repeats):
        for name, policy in settings.items():
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            done = subprocess.run(
                [sys.executable, __file__, "--worker", "--steps", str(args.steps),
                 "--warmup", str(args.warmup), "--threads", str(args.threads)],
                env=env, capture_output=True, text=True, check=True)
            times[name].append(float(done.stdout.split()[-1]))
            print(f"repeat {repeat + 1}, {name:<24} {times[name][-1]:8.1f} ms per step",
                  flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| policy | ms per step, each run | median |\n|:--|:--|--:|")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.0f}' for v in values)} | "
              f"{statistics.median(values):.0f} |")
    ratio = statistics.median(times["OMP_WAIT_POLICY=PASSIVE"]) / statistics.median(
        times["default (spinning)"])
    print(f"\nPASSIVE / default: x{ratio:.2f} time per step")


if __name__ == "__main__":
    main()
