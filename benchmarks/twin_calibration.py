"""Calibration of the twin against the published figures: three protocols, three decoders.

Wang et al. report about 10 % within-session accuracy with their FC network on the
real ds005589 (per subject from near chance to about 16 %), lower cross-session and
lower still cross-subject (handout 4.4). This script measures the same on a twin:

* ``Wang et al. FC``: the project's reproduction (:class:`eegkit.models.WangFC`,
  trained by :func:`eegkit.train.fit` with the notebooks' settings: 8 epochs,
  batch 64, lr 1e-3, early stopping on the validation part). To fit in memory the
  trials are averaged down to 250 Hz once, which is the model's own first layer;
  the per-channel normaliser is fitted on the raw training trials as
  :class:`eegkit.torchdata.ChannelNormalizer` does (per-channel z-scoring commutes
  with the averaging), so the network computes what it computes on the files.
* ``Shrinkage LDA``: sklearn ``LinearDiscriminantAnalysis(solver="lsqr",
  shrinkage="auto")`` on per-channel means in 50 ms bins, standardised per subject
  (statistics of the subject's training trials; a subject with none, the
  cross-subject test subject, uses its own unlabelled trials), fitted on the
  training part only.
* ``Ideal observer``: :func:`eegkit.ceiling.bayes_ceiling` (one observer for all
  protocols, as :func:`eegkit.ceiling.with_ceiling` does).

Each row gives the test accuracy and, per subject, the mean, lowest and highest
accuracy (within-session and session split: every subject is tested). A single
training run of the FC swings by several points with its initial weights, more than
the twin's difficulty does between seeds; ``--fc-runs N`` trains it N times and
reports the mean, with the lowest and highest run (``seconds`` is then all runs' time).

    python benchmarks/twin_calibration.py --preset full --seed 0 1
    python benchmarks/twin_calibration.py --preset default --in-memory --no-fc

``--in-memory`` draws the trials from the generator without writing the twin (for
tuning; the numbers are those of the written twin of the same preset and seed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from torch.utils.data import Dataset

from eegkit.data.channels import CATEGORIES
from eegkit.data.splits import make_split

PROTOCOLS = ("within_session", "session", "cross_subject")
FC_SFREQ = 250.0
BIN_SECONDS = 0.05


class _ArrayTrials(Dataset):
    """Trials held in memory, items as :class:`eegkit.torchdata.EEGTrialDataset` gives."""

    def __init__(self, X, rows, trials, mean, std):
        self.X = X
        self.rows = np.asarray(rows, dtype=np.int64)
        self.mean, self.std = mean[:, None], std[:, None]
        self.labels = {
            "subject": torch.as_tensor(trials["subject_id"].to_numpy()[self.rows]),
            "y": torch.as_tensor(trials["category_id"].to_numpy()[self.rows]),
        }

    @property
    def subject_index(self) -> np.ndarray:
        return self.labels["subject"].numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        X = (self.X[self.rows[index]] - self.mean) / self.std
        columns = {"X": torch.from_numpy(X.astype(np.float32)).unbind(),
                   "row": torch.from_numpy(self.rows[index]).unbind()}
        for name, labels in self.labels.items():
            columns[name] = labels[torch.from_numpy(index)].unbind()
        return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _reduce(X: np.ndarray, sfreq: float) -> dict[str, np.ndarray]:
    """Features of a batch of trials (n_trials, n_chans, n_times), µV."""
    n, c, t = X.shape
    pool = int(round(sfreq / FC_SFREQ))
    width = int(round(BIN_SECONDS * sfreq))
    X64 = X.astype(np.float64)
    return {
        "fc": X.reshape(n, c, t // pool, pool).mean(axis=-1, dtype=np.float64).astype(np.float32),
        "bins": X64[:, :, : t // width * width].reshape(n, c, t // width, width).mean(-1),
        "sum": X64.sum(axis=2),
        "sumsq": (X64**2).sum(axis=2),
    }


def _collect(parts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _from_files(data) -> dict[str, np.ndarray]:
    parts = []
    for start in range(0, len(data), 400):
        rows = np.arange(start, min(start + 400, len(data)))
        parts.append(_reduce(data.get_trials(rows), data.sfreq))
    return _collect(parts)


def _in_memory(model, observer=None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The twin's trials drawn from the generator, without files.

    The runs are those :func:`eegkit.twin.make_twin` writes, bit for bit. With
    an ideal observer, its decision on every trial is kept (``"ideal"``).
    """
    preset = model.preset
    tables, parts = [], []
    for s, subject in enumerate(preset.subjects):
        for e in range(preset.n_sessions):
            for r in range(preset.n_runs):
                X, image_ids = model.run_trials(s, e, r)
                parts.append(_reduce(X, preset.sfreq))
                if observer is not None:
                    post = observer.image_log_posterior(X.astype(np.float64), s, e)
                    parts[-1]["ideal"] = observer.category_log_posterior(post).argmax(1)
                tables.append(pd.DataFrame({
                    "subject": subject, "session": f"ses-{e + 1:02d}",
                    "subject_id": s, "image_id": image_ids,
                    "category_id": [CATEGORIES.index(model.specs[i].category)
                                    for i in image_ids]}))
    return pd.concat(tables, ignore_index=True), _collect(parts)


def _lda(features, trials, split) -> np.ndarray:
    X = features["bins"].reshape(len(trials), -1)
    subject = trials["subject_id"].to_numpy()
    Z = np.empty_like(X)
    train = np.zeros(len(trials), dtype=bool)
    train[split.train] = True
    for s in np.unique(subject):
        mine = subject == s
        ref = mine & train if (mine & train).any() else mine
        Z[mine] = (X[mine] - X[ref].mean(0)) / (X[ref].std(0) + 1e-9)
    y = trials["category_id"].to_numpy()
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    lda.fit(Z[split.train], y[split.train])
    return lda.predict(Z[split.test])


def _fc(features, trials, split, seed, max_epochs) -> np.ndarray:
    from eegkit.models import make_model
    from eegkit.train import ClassificationObjective, TrainConfig, fit, predict

    count = len(split.train) * features["n_raw_times"]
    mean = features["sum"][split.train].sum(0) / count
    std = np.sqrt(np.maximum(features["sumsq"][split.train].sum(0) / count - mean**2, 0))
    std = np.maximum(std, 1e-6)
    sets = [_ArrayTrials(features["fc"], rows, trials, mean, std)
            for rows in (split.train, split.val, split.test)]
    config = TrainConfig(max_epochs=max_epochs, batch_size=64, lr=1e-3, seed=seed,
                         device="cpu")
    model = make_model("wang_fc", features["fc"].shape[1], features["fc"].shape[2],
                       FC_SFREQ)
    result = fit(model, ClassificationObjective(), sets[0], sets[1], config,
                 progress=False, name="Wang et al. FC")
    out = predict(result.model, sets[2], device="cpu")
    if not np.array_equal(out["row"], split.test):
        raise RuntimeError("predict returned the test trials in another order")
    return out["logits"].argmax(1)


def _row(name, protocol, seed, trials, split, y_hat, seconds) -> dict:
    """Accuracy of ``y_hat`` (n_test,), or of each run of ``y_hat`` (n_runs, n_test)
    averaged over the runs, overall and per subject."""
    test = trials.iloc[split.test]
    hits = np.atleast_2d(y_hat) == test["category_id"].to_numpy()  # (n_runs, n_test)
    per_subject = pd.Series(hits.mean(axis=0)).groupby(test["subject"].to_numpy()).mean()
    run_accuracy = hits.mean(axis=1)
    return {"seed": seed, "protocol": protocol, "model": name,
            "accuracy": run_accuracy.mean(), "subject_mean": per_subject.mean(),
            "subject_min": per_subject.min(), "subject_max": per_subject.max(),
            "run_min": run_accuracy.min(), "run_max": run_accuracy.max(), "n_runs": len(hits),
            "n_test": hits.shape[1], "seconds": seconds}


def calibrate(preset: str, seed: int, in_memory: bool, fc: bool, ceiling: bool,
              max_epochs: int, n_noise_trials: int, overrides: dict, fc_runs: int = 1,
              protocols: tuple[str, ...] = PROTOCOLS) -> pd.DataFrame:
    import eegkit
    from eegkit.ceiling import IDEAL_OBSERVER, _IdealObserver, _observe, _subject_session
    from eegkit.twin.generator import TwinModel, get_preset, load_twin_model

    start = time.perf_counter()
    if in_memory:
        model = TwinModel.from_preset(get_preset(preset, **overrides), seed)
        if ceiling:
            observer = _IdealObserver(model, np.arange(len(model.preset.subjects)),
                                      n_noise_trials, noise_seed=0, batch_size=250)
            print(f"ideal observer set up in {observer.seconds:.0f} s", flush=True)
        trials, features = _in_memory(model, observer if ceiling else None)
        sfreq, n_times, data = model.preset.sfreq, len(model.times), None
    else:
        data = eegkit.open_dataset("", twin_preset=preset, seed=seed)
        trials, features = data.trials, _from_files(data)
        sfreq, n_times = data.sfreq, data.n_times
    features["n_raw_times"] = n_times
    print(f"preset {preset}, seed {seed}: {len(trials):,} trials at {sfreq:g} Hz "
          f"read in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for protocol in protocols:
        split = make_split(trials, protocol, seed=seed)
        t0 = time.perf_counter()
        rows.append(_row("Shrinkage LDA", protocol, seed, trials, split,
                         _lda(features, trials, split), time.perf_counter() - t0))
        print(rows[-1], flush=True)
        if fc:
            t0 = time.perf_counter()
            # Run k trains with seed + 1000 k: run 0 is the single run of --fc-runs 1.
            y_hat = [_fc(features, trials, split, seed + 1000 * k, max_epochs) for k in range(fc_runs)]
            rows.append(_row("Wang et al. FC", protocol, seed, trials, split, np.stack(y_hat),
                             time.perf_counter() - t0))
            print(rows[-1], flush=True)
        if ceiling and data is None:
            rows.append(_row(IDEAL_OBSERVER, protocol, seed, trials, split,
                             features["ideal"][split.test], 0.0))
            print(rows[-1], flush=True)
        elif ceiling:
            t0 = time.perf_counter()
            if protocol == protocols[0]:
                model = load_twin_model(data.root)
                subject, _ = _subject_session(model, data.trials)
                observer = _IdealObserver(model, np.unique(subject), n_noise_trials,
                                          noise_seed=0, batch_size=250)
            result = _observe(data, split, "test", observer, (1,), 10, 1, seed,
                              observer.seconds)
            rows.append(_row(IDEAL_OBSERVER, protocol, seed, trials, split, result.y_hat,
                             time.perf_counter() - t0))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=["tiny", "default", "full"])
    parser.add_argument("--seed", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--in-memory", action="store_true",
                        help="draw the trials from the generator, write no twin")
    parser.add_argument("--no-fc", action="store_true", help="skip the FC network")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ideal observer")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--fc-runs", type=int, default=1,
                        help="train the FC this many times (training seeds seed, seed + 1000, ...) "
                             "and report the mean accuracy, with the lowest and highest run")
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS),
                        help="measure only these protocols (a quicker screening round)")
    parser.add_argument("--n-noise-trials", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="with --in-memory: generator settings to try (e.g. snr=0.1)")
    args = parser.parse_args(argv)
    if args.fc_runs < 1:
        parser.error(f"--fc-runs {args.fc_runs}: train the FC at least once (or skip it with --no-fc)")
    torch.set_num_threads(args.threads)
    overrides = {k: (int(v) if v.isdigit() else float(v))
                 for k, v in (item.split("=") for item in args.set)}
    if overrides and not args.in_memory:
        raise ValueError("--set changes the generator; use it with --in-memory")
    start = time.perf_counter()
    tables = [calibrate(args.preset, seed, args.in_memory, not args.no_fc,
                        not args.no_ceiling, args.max_epochs,
                        args.n_noise_trials, overrides, args.fc_runs,
                        tuple(p for p in PROTOCOLS if p in args.protocols))
              for seed in args.seed]
    table = pd.concat(tables, ignore_index=True)
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    table = table.sort_values(["seed", "model", "protocol"],
                              key=lambda c: c.map(order) if c.name == "protocol" else c)
    shown = table.copy()
    for column in ("accuracy", "subject_mean", "subject_min", "subject_max", "run_min", "run_max"):
        shown[column] = (100 * shown[column]).map("{:.1f} %".format)
    if (shown["n_runs"] == 1).all():  # one run each: the run range says nothing
        shown = shown.drop(columns=["run_min", "run_max", "n_runs"])
    shown["seconds"] = shown["seconds"].map("{:.0f}".format)
    print(f"\nTwin calibration, preset {args.preset} (chance 5.0 %), "
          f"{time.perf_counter() - start:.0f} s in all\n")
    print(shown.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
