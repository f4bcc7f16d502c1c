"""The Bayes ceiling of a twin: the ideal observer's test accuracy, its CI and its cost.

The ideal observer knows the twin's generative model (templates, image responses,
subject mixing, session drift, noise model); see :func:`eegkit.ceiling.bayes_ceiling`.
Its accuracy on a split's test trials is the best any decoder could reach there.

    python studies/bayes_ceiling.py --preset tiny
    python studies/bayes_ceiling.py --preset default --protocol session cross_subject
    python studies/bayes_ceiling.py --preset default --n-noise-trials 2000 4000

The twin is read from (or written once into) ``$EEGKIT_CACHE``. Each line gives the
accuracy with its 95 % bootstrap CI, top-5 accuracy, the retrieval ceilings
(Recall@k, instance and class-aware) and the seconds the ceiling took (noise draws
included; loading the twin excluded).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import eegkit
from eegkit.data.splits import PROTOCOLS, make_split
from eegkit.ceiling import bayes_ceiling


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default",
                        choices=["tiny", "default", "full"])
    parser.add_argument("--seed", type=int, default=0,
                        help="twin seed (and split seed)")
    parser.add_argument("--protocol", nargs="+", default=["session"], choices=PROTOCOLS)
    parser.add_argument("--n-noise-trials", nargs="+", type=int, default=[2000])
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = eegkit.open_dataset("", twin_preset=args.preset, seed=args.seed)
    print(f"{data.source}: {len(data):,} trials, loaded in "
          f"{time.perf_counter() - start:.1f} s")
    rows = []
    for protocol in args.protocol:
        split = make_split(data.trials, protocol, seed=args.seed)
        for n_noise_trials in args.n_noise_trials:
            ceiling = bayes_ceiling(data, split, n_noise_trials=n_noise_trials,
                                    noise_seed=args.noise_seed, n_boot=args.n_boot,
                                    n_perm=1, seed=args.seed)
            print(ceiling.summary())
            scores = ceiling.scores.set_index("metric")["value"]
            retrieval = ceiling.retrieval.set_index("metric")["value"]
            low, high = ceiling.ci
            rows.append({"preset": args.preset, "protocol": protocol,
                         "n_trials": ceiling.n_trials, "n_noise_trials": n_noise_trials,
                         "accuracy": ceiling.accuracy, "ci_low": low, "ci_high": high,
                         "top5_accuracy": scores["top5_accuracy"],
                         **retrieval.to_dict(),
                         "seconds": ceiling.seconds})
    table = pd.DataFrame(rows)
    print(table.round(3).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
