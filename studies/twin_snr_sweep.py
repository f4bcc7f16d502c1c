"""How hard is a twin for linear decoders, over a range of SNRs, on one draw?

The evoked part and the noise of every trial are drawn once (``snr=1``) and their
50 ms bins (50-350 ms) kept apart, so that the bins of the twin at any ``snr`` are
``snr * evoked + noise``, bit for bit the twin's at that setting (up to float
rounding), and a sweep costs one draw. For each SNR and protocol it prints three
shrinkage LDAs on the same trials:

* ``lda_subj_z``: one LDA for all subjects, bins z-scored per subject with the
  subject's training statistics (as ``eegkit.models.classical`` does: notebook 02's LDA);
* ``lda_rec_z``: the same, z-scored per recording (subject and session) with all of
  the recording's trials, label-free (the multi-head recipe's normalisation);
* ``per_subject``: one LDA a subject, recording z-scored (what one classifier head
  per subject can read at most, linearly);

and the subjects' range of ``lda_subj_z``. Version 4's settings were chosen with it:

    python studies/twin_snr_sweep.py --preset full --seed 0 --snr 0.08 0.1 0.12 0.15 \\
        --set subject_own_topography=0.3 subject_own_template=0.15
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from eegkit.data.channels import CATEGORIES
from eegkit.data.splits import make_split
from eegkit.twin.generator import TwinModel, get_preset

BIN_SECONDS = 0.05
BINS = slice(1, 7)  # 50-350 ms, where the evoked responses are


def _bins(X: np.ndarray, sfreq: float) -> np.ndarray:
    """(n_trials, n_chans * 6) means of the 50 ms bins from 50 to 350 ms, µV."""
    width = int(BIN_SECONDS * sfreq)
    n, c, t = X.shape
    binned = X[:, :, : t // width * width].reshape(n, c, t // width, width).mean(-1)
    return binned[:, :, BINS].reshape(n, -1)


def draw(model: TwinModel) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The trials' table and the bins of their evoked part (at ``snr=1``) and noise,
    drawn as :meth:`TwinModel.run_trials` draws them."""
    preset, tables, evoked, noise = model.preset, [], [], []
    for s, subject in enumerate(preset.subjects):
        for e in range(preset.n_sessions):
            offset = model.session_offset[s, e][None, :, None]
            for r in range(preset.n_runs):
                ids = model.run_images(s, e, r)
                rng = np.random.default_rng([model.seed, 2, s, e, r])
                jitter, amplitude = model.trial_variability(rng, len(ids))
                evoked.append(_bins(model.evoked(s, e, ids, jitter, amplitude) - offset, preset.sfreq))
                noise.append(_bins(model.noise(rng, len(ids), s, e, drift_path=True) + offset,
                                   preset.sfreq))
                tables.append(pd.DataFrame({
                    "subject": subject, "session": f"ses-{e + 1:02d}", "subject_id": s,
                    "image_id": ids,
                    "category_id": [CATEGORIES.index(model.specs[i].category) for i in ids]}))
    return pd.concat(tables, ignore_index=True), np.concatenate(evoked), np.concatenate(noise)


def _lda_hits(Z, y, train, test) -> np.ndarray:
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Z[train], y[train])
    return lda.predict(Z[test]) == y[test]


def sweep(preset: str, seed: int, snrs: list[float], overrides: dict,
          protocols=("session", "within_session")) -> pd.DataFrame:
    start = time.perf_counter()
    model = TwinModel.from_preset(get_preset(preset, **{**overrides, "snr": 1.0}), seed)
    trials, evoked, noise = draw(model)
    y = trials["category_id"].to_numpy()
    subject = trials["subject_id"].to_numpy()
    recording = subject * 100 + trials["session"].str[-2:].astype(int).to_numpy()
    rows = []
    for protocol in protocols:
        split = make_split(trials, protocol, seed=seed)
        is_train = np.zeros(len(y), dtype=bool)
        is_train[split.train] = True
        for snr in snrs:
            X = snr * evoked + noise
            by_subject, by_recording = np.empty_like(X), np.empty_like(X)
            for s in np.unique(subject):
                mine, ref = subject == s, (subject == s) & is_train
                by_subject[mine] = (X[mine] - X[ref].mean(0)) / X[ref].std(0)
            for r in np.unique(recording):
                mine = recording == r
                by_recording[mine] = (X[mine] - X[mine].mean(0)) / X[mine].std(0)
            pooled = _lda_hits(by_subject, y, split.train, split.test)
            per_subject = [
                _lda_hits(by_recording, y, split.train[subject[split.train] == s],
                          split.test[subject[split.test] == s]).mean()
                for s in np.unique(subject)]
            subjects = pd.Series(pooled).groupby(subject[split.test]).mean()
            rows.append({
                "seed": seed, "protocol": protocol, "snr": snr,
                "lda_subj_z": pooled.mean(),
                "lda_rec_z": _lda_hits(by_recording, y, split.train, split.test).mean(),
                "per_subject": float(np.mean(per_subject)),
                "subject_min": subjects.min(), "subject_max": subjects.max(),
                "seconds": time.perf_counter() - start})
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in rows[-1].items()}), flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["tiny", "default", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr", nargs="+", type=float, default=[0.08, 0.1, 0.12])
    parser.add_argument("--protocols", nargs="+", default=["session", "within_session"],
                        choices=["session", "within_session"],
                        help="within_session needs >= 3 trials a category per session (not tiny)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="other generator settings (e.g. subject_own_topography=0.3)")
    args = parser.parse_args(argv)
    overrides = {k: float(v) for k, v in (item.split("=") for item in args.set)}
    table = sweep(args.preset, args.seed, args.snr, overrides, tuple(args.protocols))
    shown = table.copy()
    for column in ("lda_subj_z", "lda_rec_z", "per_subject", "subject_min", "subject_max"):
        shown[column] = (100 * shown[column]).map("{:.1f} %".format)
    print(f"\npreset {args.preset}, seed {args.seed}, settings {overrides or 'the defaults'} "
          "(chance 5.0 %)\n")
    print(shown.drop(columns="seconds").to_string(index=False))
    return table


if __name__ == "__main__":
    main()
