"""Twin CLIP pretraining measured: retrieval on the default twin's test split, as notebook 04 scores it.

Trains a twin CLIP with the default config (optionally overridden) without the
experiment's captions, then scores image-to-caption retrieval on the session split's
test part and prints the category share of caption- and image-embedding variance
(:func:`eegkit.metrics.embeddings.category_variance_share`), the training time and the
process CPU time.

    python studies/twin_clip_retrieval.py run-name
    python studies/twin_clip_retrieval.py run-name '{"epochs": 9, "category_weight": 0.6}'
    python studies/twin_clip_retrieval.py ensure   # load_clip("twin"), pretraining once

The trained model goes to build/twin-clip-runs/<run-name>; the twin is read from (or
written once into) ``$EEGKIT_CACHE``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import eegkit
from eegkit import metrics
from eegkit.data.splits import make_split
from eegkit.retrieval import image_retrieval, load_clip
from eegkit.twin.twinclip import TWIN_CLIP_PRESETS, pretrain_twin_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="run name (the model goes to build/twin-clip-runs/NAME), "
                        "or 'ensure' to load_clip('twin') as notebook 04 does")
    parser.add_argument("overrides", nargs="?", default="{}",
                        help="JSON object of TwinClipConfig fields that replace the default preset's")
    args = parser.parse_args()
    name, overrides = args.name, json.loads(args.overrides)
    data = eegkit.open_dataset("", twin_preset="default", seed=0, subjects="handout")
    rows = data.trials.iloc[make_split(data.trials, "session", seed=0).test]
    if name == "ensure":  # the real code path: load_clip("twin") as notebook 04 does
        t = time.time()
        clip = load_clip("twin", exclude_captions=data.captions.caption)
        print("load_clip('twin') wall s", round(time.time() - t, 1))
    else:
        config = replace(TWIN_CLIP_PRESETS["default"], **overrides)
        print(config, flush=True)
        out = Path("build/twin-clip-runs") / name
        t = time.time()
        pretrain_twin_clip(out, data.captions.caption, config, progress=False)
        print("pretrain wall s", round(time.time() - t, 1), flush=True)
        clip = load_clip(out)
    info = json.loads((Path(clip.path) / "eegkit_twin_clip.json").read_text())
    print("train_seconds", info["train_seconds"], "n_pairs", info["n_pairs"])
    for k in ("epoch_loss", "epoch_instance_loss", "epoch_category_loss"):
        if k in info:
            print(k, np.round(info[k], 3).tolist())
    ranked = image_retrieval(clip, rows, n_boot=200, seed=0, bertscore_model=False)
    print(f"{len(rows)} trials, {len(ranked.queries)} images, {len(ranked.bank)} captions")
    print(ranked.scores[["metric", "value", "ci_low", "ci_high", "chance"]].round(3).to_string(index=False))
    print("category variance share (captions)",
          round(metrics.category_variance_share(ranked.bank_emb, ranked.bank.category), 3))
    print("category variance share (images)",
          round(metrics.category_variance_share(ranked.query_emb, ranked.queries.category), 3))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("process CPU s", round(usage.ru_utime + usage.ru_stime, 1))


if __name__ == "__main__":
    main()
