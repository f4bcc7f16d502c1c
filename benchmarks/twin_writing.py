"""How long writing the twin takes with 1 and with N worker processes, side by side.

    python benchmarks/twin_writing.py --preset default --workers 1 2

Each count of workers writes the same twin (the same bytes, tested) into a
temporary folder, in turn, ``--repeats`` times; the table gives the best time of
each and its speed-up over the first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from eegkit.twin.generator import make_twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tmp", default=None, help="folder for the twins (default: the system's)")
    args = parser.parse_args()
    best: dict[int, float] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for _ in range(args.repeats):
            for workers in args.workers:
                started = time.perf_counter()
                make_twin(Path(tmp) / "twin", preset=args.preset, seed=args.seed, workers=workers,
                          overwrite=True, progress=False)
                seconds = time.perf_counter() - started
                best[workers] = min(best.get(workers, seconds), seconds)
                print(f"workers={workers}: {seconds:.1f} s", flush=True)
    first = best[args.workers[0]]
    table = pd.DataFrame({"workers": list(best), "seconds": list(best.values()),
                          "speed-up": [first / s for s in best.values()]})
    print(f"\ntwin {args.preset!r}, best of {args.repeats}; {os.cpu_count()} CPUs\n")
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
