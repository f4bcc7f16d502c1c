"""Can a linear decoder read the image's attributes from the twin's EEG?

Task 2B's instance-level retrieval needs more than the category: among the captions
of one category, only the attributes the caption states (count, size, colour,
position, background) tell the seen image from the others, and the twin encodes them
in a weaker image-specific response (``eegkit.twin.model``). This script fits a
shrinkage LDA (the Task 1 classical reference: 50 ms bins, per-subject z-scored, all
statistics from the training trials) for the category and for each attribute on the
session split, and prints validation and test accuracy beside chance (the share of
the most frequent value in that part) and a binomial p-value of the test accuracy
against it. An attribute at chance here is one that no decoder trained on this many
trials is likely to read, so no EEG ranker can order the captions inside a category.

    python studies/attribute_decoding.py --preset default --seed 0
    python studies/attribute_decoding.py --preset full --seed 0

Twin data only: the published dataset has no attribute labels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

import eegkit
from eegkit.data.splits import make_split
from eegkit.models.classical import split_features
from eegkit.twin import load_twin_model


def attribute_labels(data) -> pd.DataFrame:
    """One column per attribute (value index) and ``category``, one row per trial of ``data.trials``."""
    if data.twin is None:
        raise SystemExit(f"{data.source}: not twin data; attribute labels exist only on the twin")
    spec_of_caption = {spec.caption: spec for spec in load_twin_model(data.root).specs}
    missing = sorted(set(data.trials["caption"]) - set(spec_of_caption))
    if missing:
        raise SystemExit(f"{len(missing)} captions of the trials match no twin image spec, e.g. {missing[0]!r}")
    specs = [spec_of_caption[caption] for caption in data.trials["caption"]]
    labels = pd.DataFrame([spec.attribute_indices() for spec in specs])
    labels.insert(0, "category", data.trials["category_id"].to_numpy())
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    data = eegkit.open_dataset("", twin_preset=args.preset, seed=args.seed, subjects="handout")
    split = make_split(data.trials, "session")
    parts = {part: np.asarray(getattr(split, part)) for part in ("train", "val", "test")}
    Z = split_features(data, split)
    labels = attribute_labels(data)
    rows = []
    for name in labels.columns:
        y = {part: labels[name].to_numpy()[index] for part, index in parts.items()}
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Z["train"], y["train"])
        row = {"target": name, "values": int(labels[name].nunique())}
        for part in ("val", "test"):
            hits = int((lda.predict(Z[part]) == y[part]).sum())
            chance = np.bincount(y[part]).max() / len(y[part])
            row[f"{part} accuracy"] = hits / len(y[part])
            row[f"{part} chance"] = chance
            if part == "test":
                row["test p"] = binomtest(hits, len(y[part]), chance, alternative="greater").pvalue
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"\n{data.source}; session split: {len(parts['train'])} training, {len(parts['val'])} validation, "
          f"{len(parts['test'])} test trials; shrinkage LDA on 50 ms bins; {time.time() - started:.0f} s\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
