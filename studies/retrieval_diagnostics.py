"""Why do Task 2B's learned rows add so little to the classifier? Two measurements.

``heads``: are the retrieval heads' validation scores flat because the frozen Task 1
encoder memorised its training trials (so the heads learn from features cleaner than
those of unseen trials)? One Task 1 model of the recipe (per-recording normalisation,
no ensemble) is trained on sessions 1-2, another on sessions 1-3, and the KD + InfoNCE
heads of notebook 05's strategy rows (both encoders frozen) train on features of
trials the encoder saw or never saw:

* encoder on sessions 1-2, heads on sessions 1-2 (seen);
* encoder on sessions 1-2, heads on session 3 (never seen by the encoder);
* encoder on sessions 1-3, heads on session 3 (seen; the same head-training trials);
* encoder on sessions 1-3, heads on sessions 1-3 (seen; as notebook 05).

Validation is session 4, test session 5 (the session split's). Printed per arm: the
in-batch caption and category accuracy of the last epoch on training and validation,
and the validation and test scores.

``prior``: notebook 05's category-prior row (KD + debiased InfoNCE + CE, shared
projection, the Task 1 ensemble's category prior) ranked in three more ways, each
with every prior weight ``w``, on the validation and the test trials:

* ``member0``: as notebook 05 (the heads on the first ensemble member's encoder);
* ``mean3``: the mean similarity of three such rows, one per ensemble member's encoder
  (ensembling, as the Task 1 recipe does);
* ``centred``: each caption's similarity less its mean over the training queries of
  its category (``(q - mean q of the category) . c``), so that the embedding's
  order inside a category cannot be the same for every query (querybank
  normalisation, Bogolin et al. 2022);
* ``lex``: categories ordered by the classifier alone, the embedding only orders
  the captions inside a category.

and beside them classify-then-retrieve. The weight notebook 05 would choose is the
one with the highest validation sum (``val sum``).

    python studies/retrieval_diagnostics.py heads --seed 0
    python studies/retrieval_diagnostics.py prior --seed 0 --checkpoint-dir build/checkpoints

On the default twin each takes a few minutes (``prior`` reuses notebook 05's Task 1
ensemble and category-prior row from ``--checkpoint-dir`` when they are there).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

import eegkit
from eegkit.classification import MULTIHEAD_STEPS, multihead_recipe, run_classification
from eegkit.data.splits import make_split
from eegkit.data.torchdata import SplitDatasets
from eegkit.models import subject_lookup
from eegkit.retrieval import CategoryPrior, RetrievalConfig, load_clip, run_retrieval
from eegkit.retrieval.clip import caption_bank
from eegkit.retrieval.evaluate import SELECTION_METRICS, rank_by_scores
from eegkit.retrieval.model import eeg_outputs
from eegkit.train import TrainConfig

#: Notebook 05's category-prior row.
PRIOR_ROW = {"lambdas": {"kd": 1.0, "debiased": 1.0, "ce": 0.5}, "kd_warmup_epochs": 2,
             "shared_projection": True, "prior_weights": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]}
WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, "lex"]


def heads(data, clip, seed: int, checkpoint_dir) -> None:
    """Print the four arms' last-epoch in-batch accuracies and validation and test scores."""
    sessions = sorted(data.trials["session"].unique())

    def split(train_sessions):
        return make_split(data.trials, "session", train_sessions=train_sessions,
                          val_sessions=[sessions[3]], test_sessions=[sessions[4]])

    config = TrainConfig(max_epochs=8, batch_size=64, lr=1e-3, seed=seed)
    recipe = multihead_recipe(MULTIHEAD_STEPS[:2])  # one model of the recipe
    encoders = {n: run_classification(data, split(sessions[:n]), "multihead", config, checkpoint_dir,
                                      n_boot=100, n_perm=10, **recipe) for n in (2, 3)}
    retrieval = RetrievalConfig(lambdas={"kd": 1.0, "infonce": 1.0}, train_eeg_encoder=False)
    frozen = TrainConfig(max_epochs=8, batch_size=64, lr=1e-3, seed=seed, patience=8)
    arms = [(2, sessions[:2], "seen"), (2, sessions[2:3], "never seen"),
            (3, sessions[2:3], "seen"), (3, sessions[:3], "seen (as notebook 05)")]
    rows = []
    for n_encoder, head_sessions, seen in arms:
        run = run_retrieval(data, split(head_sessions), clip, retrieval, frozen, checkpoint_dir,
                            encoder_state=encoders[n_encoder].fit.model.encoder.state_dict(),
                            normalization=recipe["normalization"], n_boot=100, bertscore_model=False,
                            progress=False)
        last = run.fit.history.iloc[-1]
        test = run.test.scores.set_index("metric")["value"]
        rows.append({"encoder trained on": "+".join(sessions[:n_encoder]), "heads trained on": "+".join(head_sessions),
                     "features": seen,
                     **{f"{part} {what}": last[f"{part}_{col}"] for part in ("train", "val")
                        for what, col in (("caption acc", "acc"), ("category acc", "category_acc"))},
                     **{f"val {k}": v for k, v in run.validation.items() if k in SELECTION_METRICS},
                     "test R@5": test["Recall@5 (instance)"], "test class R@1": test["Recall@1 (class-aware)"],
                     "test MAP": test["MAP (instance)"]})
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))


def prior(data, clip, seed: int, checkpoint_dir) -> None:
    """Print every ranking's validation and test scores at every prior weight."""
    split = make_split(data.trials, "session")
    config = TrainConfig(max_epochs=8, batch_size=64, lr=1e-3, seed=seed)
    recipe = multihead_recipe(MULTIHEAD_STEPS)
    task1 = run_classification(data, split, "multihead", config, checkpoint_dir, n_boot=100, n_perm=10,
                               workers="auto", **recipe)
    lda = run_classification(data, split, "lda", config, n_boot=100, n_perm=10)
    classifier = max([task1, lda], key=lambda run: run.validation_accuracy)
    category_prior = CategoryPrior.from_classification(classifier)
    row = RetrievalConfig(**PRIOR_ROW, train_eeg_encoder=False)
    frozen = TrainConfig(max_epochs=8, batch_size=64, lr=1e-3, seed=seed, patience=8)
    runs = [run_retrieval(data, split, clip, row, frozen, checkpoint_dir, encoder_state=m.model.encoder.state_dict(),
                          category_state=m.model.heads.state_dict(), category_prior=category_prior, n_boot=None,
                          bertscore_model=False, normalization=recipe["normalization"], progress=False)
            for m in task1.members]
    sets = SplitDatasets.from_split(data, split, recipe["normalization"])
    lookup = subject_lookup(sets.train_subjects, data.subjects)
    text = runs[0].fit.model.text.embed_all().cpu().numpy()  # frozen text encoder: the same for every run

    def embeddings(dataset):  # run_retrieval returns its models reading raw trials
        return [eeg_outputs(run.fit.model, dataset, lookup)["eeg"] for run in runs]

    # Each member's mean training-query embedding of every category, shape (n_categories, dim).
    train_category = data.trials.iloc[sets.train.rows]["category_id"].to_numpy()
    category_means = [np.stack([emb[train_category == k].mean(0) for k in range(category_prior.log_proba.shape[1])])
                      for emb in embeddings(sets.train)]

    def scores(part, dataset):
        rows = data.trials.iloc[dataset.rows]
        bank = caption_bank(rows)
        queries = rows.reset_index(drop=True)
        category = bank["category_id"].to_numpy()
        log_p = category_prior.rows(np.asarray(dataset.rows), part)[:, category]
        bank_text = text[bank["caption_id"].to_numpy()]
        embs = embeddings(dataset)
        out = {("classify-then-retrieve", "", ""): rank_by_scores(log_p, queries, bank, n_boot=None).per_query}
        for name, members in (("member0", [0]), ("mean3", list(range(len(runs))))):
            sim = np.mean([embs[m] @ bank_text.T for m in members], axis=0)
            query_means = np.mean([category_means[m] for m in members], axis=0)
            hub = (query_means[category] * bank_text).sum(1)
            for centring, s in (("raw", sim), ("centred", sim - hub[None])):
                for w in WEIGHTS:
                    extra = 1e4 * log_p if w == "lex" else w * row.temperature * log_p
                    out[(name, centring, str(w))] = rank_by_scores(s + extra, queries, bank, n_boot=None).per_query
        return pd.DataFrame({key: per_query[list(SELECTION_METRICS)].mean() for key, per_query in out.items()}).T

    table = pd.concat({"val": scores("validation", sets.val), "test": scores("test", sets.test)}, axis=1)
    table[("val", "sum")] = table["val"].sum(axis=1)
    table.index.names = ["ranking", "similarity", "w"]
    print(f"twin seed {seed}; classifier of the prior: {classifier.label}")
    print(table.round(4).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["heads", "prior"])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default="build/diagnostics",
                        help="where trained runs are kept and reused (build/checkpoints: notebook 05's)")
    args = parser.parse_args()
    data = eegkit.open_dataset("", twin_preset=args.preset, seed=args.seed, subjects="handout")
    clip = load_clip("twin", exclude_captions=data.captions.caption, device=torch.device("cpu"))
    {"heads": heads, "prior": prior}[args.what](data, clip, args.seed, args.checkpoint_dir)


if __name__ == "__main__":
    main()
