"""Train every classifier on the same split for the same epochs; compare side by side.

For each model: test accuracy (95 % CI), training trials per second and peak
resident memory, each model in its own process so that the peaks do not mix. Then
the multi-head model's ratio to the EEGNet and ShallowConvNet baselines.

    python benchmarks/train_models.py --preset default --epochs 6
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import pandas as pd

MODELS = ("wang_fc", "shallow", "eegnet", "multihead")


def _train_one(args: dict, queue) -> None:
    import torch

    import eegkit
    from eegkit.experiments import run_classification
    from eegkit.splits import make_split
    from eegkit.train import TrainConfig

    torch.set_num_threads(args["threads"])
    root = eegkit.resolve_data_root(args["data_dir"], twin_preset=args["preset"], seed=args["seed"])
    data = eegkit.load_dataset(root, subjects=args["subjects"])
    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=args["epochs"], patience=args["epochs"], seed=args["seed"],
                         batch_size=args["batch_size"], lr=args["lr"])
    started = time.time()
    run = run_classification(data, split, args["model"], config, n_boot=500, n_perm=200, progress=False)
    accuracy = run.scores.set_index("metric").loc["accuracy"]
    queue.put({
        "model": run.label,
        "test_accuracy": accuracy["value"],
        "ci_low": accuracy["ci_low"],
        "ci_high": accuracy["ci_high"],
        "train_trials_per_second": run.fit.history["train_trials_per_second"].mean(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n_parameters": run.n_parameters,
        "wall_seconds": time.time() - started,
        "source": data.source,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--subjects", default="handout")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = vars(parser.parse_args())
    context = mp.get_context("spawn")
    rows = []
    for model in args["models"]:
        queue = context.Queue()
        child = context.Process(target=_train_one, args=({**args, "model": model}, queue))
        child.start()
        rows.append(queue.get())
        child.join()
        print(f"done: {rows[-1]['model']} in {rows[-1]['wall_seconds']:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{table.pop('source').iloc[0]}; session split; {args['epochs']} epochs, batch "
          f"{args['batch_size']}, {args['threads']} threads\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    by_model = table.set_index("model")
    if "Multi-head CNN+Transformer" in by_model.index:
        multi = by_model.loc["Multi-head CNN+Transformer"]
        print()
        for baseline in ("EEGNet", "ShallowConvNet"):
            if baseline in by_model.index:
                base = by_model.loc[baseline]
                print(f"multi-head / {baseline}: accuracy x{multi.test_accuracy / base.test_accuracy:.2f}, "
                      f"training speed x{multi.train_trials_per_second / base.train_trials_per_second:.2f}, "
                      f"peak memory x{multi.peak_rss_mb / base.peak_rss_mb:.2f}")


if __name__ == "__main__":
    main()
