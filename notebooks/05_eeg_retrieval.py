# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 EEG-to-caption retrieval (handout sections 5.5 and 5.6)
#
# The Task 1 encoder (CNN stage + shared transformer) gets one projection head per
# subject into CLIP's text-embedding space; the EEG embedding of a trial ranks the
# caption bank of the test split exactly as the image did in notebook 04, with the
# same metric functions. Three groups of configurations:
#
# * **losses** with both encoders frozen (the handout's "both frozen": the Task 1
#   encoder from notebook 03's checkpoint, only the projection heads train): cosine,
#   KD, naive InfoNCE, debiased InfoNCE (down-weighting, same-class removal), a
#   combination with a KD warm-up, and that combination with a *category prior*: one
#   projection head shared by the subjects (plus small subject residuals), and captions
#   ranked by `cos / T + w log p(category | EEG)`, the category probabilities from a
#   per-subject category head that starts from the Task 1 heads, `w` chosen on validation;
# * **text-encoder strategies** with one loss and the EEG encoder still frozen, so the
#   text side is the only difference: frozen, partial unfreezing, adapters, LoRA;
# * **frozen CLIP**: the EEG encoder trains too (the costly row).
#
# Every number is on the test trials of the session split, beside chance (a random
# ranking of the same bank) and a 95 % bootstrap interval. The image-query row is the
# ceiling: CLIP from the image itself. The configuration called best is chosen on the
# *validation* trials, never on the test scores.

# %% tags=["parameters"]
data_dir = ""  # ds005589 root; empty: $EEGKIT_DATA, else the synthetic twin
twin_preset = "default"
seed = 0
subjects = "handout"
figures_dir = "../figures"  # relative to notebooks/, where Jupyter runs them
checkpoint_dir = "../build/checkpoints"
device = "auto"  # "cpu", "cuda" or "auto"
clip_model = "twin"  # as in notebook 04
# The Task 1 encoder: with the settings of notebook 03 its checkpoint is reused.
init_from_task1 = True
max_epochs = 8
batch_size = 64
lr = 1e-3
recipe_steps = None  # as in notebook 03 (None: eegkit's MULTIHEAD_STEPS)
workers = "auto"  # as in notebook 03: processes training the Task 1 ensemble's members
# Task 2B training
retrieval_epochs = 8  # frozen EEG encoder: cheap epochs
retrieval_lr = 1e-3
loss_configs = [
    {"lambdas": {"cos": 1.0}},
    {"lambdas": {"kd": 1.0}},
    {"lambdas": {"infonce": 1.0}},
    {"lambdas": {"debiased": 1.0}, "debias_strategy": "downweight"},
    {"lambdas": {"debiased": 1.0}, "debias_strategy": "same_class"},
    {"lambdas": {"kd": 1.0, "debiased": 1.0, "ce": 0.5}, "kd_warmup_epochs": 2},
    {"lambdas": {"kd": 1.0, "debiased": 1.0, "ce": 0.5}, "kd_warmup_epochs": 2, "shared_projection": True,
     "prior_weights": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]},
]
strategy_loss = {"lambdas": {"kd": 1.0, "infonce": 1.0}}  # loss of the strategy rows
strategies = ["frozen", "partial", "adapter", "lora"]
eeg_training_epochs = 3  # the frozen-CLIP row (EEG encoder trains) and cross-subject
secondary_protocols = ["cross_subject"]
n_boot = 1000
bertscore_model = ""  # empty: all-MiniLM-L6-v2 (offline)
n_examples = 6

# %%
import dataclasses
import functools

import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import eegkit
from eegkit import metrics
from eegkit.ceiling import bayes_ceiling
from eegkit.classification import MULTIHEAD_STEPS, multihead_recipe, run_classification
from eegkit.data.splits import make_split
from eegkit.report import plots, save_figure, save_table
from eegkit.retrieval import (CategoryPrior, RetrievalConfig, ablation_table, chance_verdicts, example_queries,
                              image_retrieval, load_clip, run_retrieval)
from eegkit.retrieval.evaluate import (CEILING_QUERIES, reference_row, versus_references, with_fraction_of_ceiling,
                                       within_category)
from eegkit.retrieval.losses import InfoNCELoss
from eegkit.retrieval.references import classify_then_retrieve, linear_map_retrieval
from eegkit.train import TrainConfig, resolve_device

data = eegkit.open_dataset(data_dir, twin_preset=twin_preset, seed=seed, subjects=subjects)
synthetic = data.twin is not None  # figures of the twin are marked "synthetic data"
display(Markdown(eegkit.data_banner(data)))
eegkit.require_captions(data, "Notebook 05 (EEG-to-caption retrieval)")  # the published OpenNeuro copy has no captions
split = make_split(data.trials, "session")
print(split.description)
clip = load_clip(clip_model, exclude_captions=data.captions.caption, device=resolve_device(device))
print(f"CLIP: {clip.label} ({clip.path})")

# %% [markdown]
# ## The ceiling: image queries on the same test bank
# CLIP ranks the test bank from each test image (notebook 04's analysis on this split).

# %%
test_rows = data.trials.iloc[split.test]
images = image_retrieval(clip, test_rows, n_boot=n_boot, seed=seed, bertscore_model=bertscore_model or None)
image_row = images.table_row(f"images ({clip.label})")

# %% [markdown]
# ## The Task 1 encoder
# The multi-head classifier of notebook 03 (same settings, so its checkpoint is
# reused when present); its encoder initialises every EEG configuration below.

# %%
task1_config = TrainConfig(max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
recipe = multihead_recipe([tuple(step) for step in recipe_steps] if recipe_steps else MULTIHEAD_STEPS)
task1 = run_classification(data, split, "multihead", task1_config, checkpoint_dir, n_boot=100, n_perm=10,
                           workers=workers, **recipe)
# An ensemble's first model gives the encoder and the category heads.
encoder_state = task1.fit.model.encoder.state_dict() if init_from_task1 else None
category_state = task1.fit.model.heads.state_dict() if init_from_task1 else None
print(f"Task 1 model: test accuracy {task1.scores.set_index('metric').loc['accuracy', 'value']:.1%} "
      f"({task1.n_members} model(s); the encoder and heads below are the first's)")

# %% [markdown]
# ## Two reference rows
# *Classify-then-retrieve*: the Task 1 classifier with the best validation accuracy
# (the multi-head model or shrinkage LDA) gives each test trial its category
# probabilities, and each caption scores the probability of its category (the captions
# of a category tie). *Linear map*: ridge regression from binned EEG to the caption's
# CLIP text embedding, its strength chosen on validation. Every learned row must beat both.
# The same classifier's probabilities are the *category prior* of the learned row that
# has one: captions rank by `cos(EEG, caption) / T + w log p(category | EEG)`, `w` chosen
# on the validation trials, so the embedding only has to order the captions of a category.

# %%
lda = run_classification(data, split, "lda", task1_config, n_boot=100, n_perm=10)
classifier = max([task1, lda], key=lambda run: run.validation_accuracy)
via_class = classify_then_retrieve(classifier.predictions["logits"], data.trials.iloc[classifier.predictions["row"]],
                                   n_boot=n_boot, seed=seed, bertscore_model=bertscore_model or None)
linear = linear_map_retrieval(data, split, clip, n_boot=n_boot, seed=seed, bertscore_model=bertscore_model or None)
reference_rows = [via_class.table_row(f"classify-then-retrieve ({classifier.label})"),
                  linear.test.table_row(f"linear map (ridge, alpha {linear.alpha:g})")]
# The category prior of the learned rows (those with prior_weights) is the same classifier's.
category_prior = CategoryPrior.from_classification(classifier)

# %% [markdown]
# ## InfoNCE from scratch, then from the library
# The contrastive rows below train with InfoNCE. On a handful of test trials with
# different captions, here it is by hand: normalise the EEG embeddings (here the
# linear map's predictions, already in CLIP's text space) and the embeddings of each
# trial's own caption, take every EEG-caption cosine over the temperature, and the
# loss is the cross-entropy of picking trial i's own caption (column i) in row i
# (EEG -> text), and of picking trial i in column i (text -> EEG). The library's
# `InfoNCELoss` must give the same numbers; the "InfoNCE" row trains the EEG -> text
# direction (`symmetric=False`, the default of `RetrievalConfig`), `symmetric=True`
# averages both as CLIP does. With repeated captions in a batch the library also
# counts every copy of the caption as a positive (`duplicates="positive"`), which
# these distinct captions do not need.

# %%
ranked = linear.test
few = ranked.queries.drop_duplicates("caption_id").index[:8].to_numpy()  # 8 trials, 8 different captions
own = metrics.caption_bank_index(ranked.queries["caption_id"][few], ranked.bank["caption_id"])
eeg = F.normalize(torch.as_tensor(ranked.query_emb[few], dtype=torch.float32), dim=1)  # (8, dim)
txt = F.normalize(torch.as_tensor(ranked.bank_emb[own], dtype=torch.float32), dim=1)  # (8, dim)
tau = RetrievalConfig(lambdas={"infonce": 1.0}).temperature
Z = eeg @ txt.T / tau  # (8 trials, 8 captions); the matching pairs are on the diagonal
target = torch.arange(len(few))
by_hand = {"EEG -> text": F.cross_entropy(Z, target), "text -> EEG": F.cross_entropy(Z.T, target)}
by_hand["both, averaged"] = (by_hand["EEG -> text"] + by_hand["text -> EEG"]) / 2

caption_ids = torch.as_tensor(ranked.queries["caption_id"][few].to_numpy())
library = InfoNCELoss(temperature=tau, symmetric=True)(eeg, txt, caption_ids, output_dict=True)
trained = RetrievalConfig(lambdas={"infonce": 1.0}).make_loss()(eeg, txt, caption_ids)  # the InfoNCE row's loss
torch.testing.assert_close(library["infonce_e2t"], by_hand["EEG -> text"])
torch.testing.assert_close(library["infonce_t2e"], by_hand["text -> EEG"])
torch.testing.assert_close(library["infonce"], by_hand["both, averaged"])
torch.testing.assert_close(trained, by_hand["EEG -> text"])
pd.DataFrame({"by hand": [float(v) for v in by_hand.values()],
              "InfoNCELoss": [float(library[k]) for k in ("infonce_e2t", "infonce_t2e", "infonce")],
              "chance (log 8)": float(torch.log(torch.tensor(len(few))))},
             index=list(by_hand)).round(4)

# %% [markdown]
# ## Loss ablation (both encoders frozen: only the projection heads train)
# The frozen encoder's features are computed once and shared by these runs.

# %%
frozen_eeg = TrainConfig(max_epochs=retrieval_epochs, batch_size=batch_size, lr=retrieval_lr, seed=seed,
                         device=device, patience=retrieval_epochs)
bert_model = bertscore_model or None

# The EEG is z-scored as the Task 1 model's was (its recipe's normalisation).
normalization = recipe.get("normalization", "training")
retrieval = functools.partial(run_retrieval, data, split, clip, checkpoint_dir=checkpoint_dir,
                              encoder_state=encoder_state, category_state=category_state,
                              category_prior=category_prior, n_boot=n_boot,
                              bertscore_model=bert_model, normalization=normalization)
loss_runs = [retrieval(RetrievalConfig(**spec, train_eeg_encoder=False), frozen_eeg) for spec in loss_configs]

# %% [markdown]
# ## Text-encoder strategies (one loss; EEG encoder frozen, so only the text side differs)

# %%
strategy_runs = [retrieval(RetrievalConfig(**strategy_loss, strategy=strategy, train_eeg_encoder=False), frozen_eeg)
                 for strategy in strategies]

# %% [markdown]
# ## Frozen CLIP: the EEG encoder trains too

# %%
eeg_config = TrainConfig(max_epochs=eeg_training_epochs, batch_size=batch_size, lr=retrieval_lr, seed=seed,
                         device=device, patience=eeg_training_epochs)
eeg_runs = [retrieval(RetrievalConfig(**strategy_loss), eeg_config)] if eeg_training_epochs else []
runs = loss_runs + strategy_runs + eeg_runs

# %% [markdown]
# ## The ablation table
# Image queries (CLIP's ceiling), on the twin the ideal observer's EEG retrieval (the
# best any EEG decoder could do on these trials), every EEG configuration, and chance,
# side by side.
# Intervals are 95 % bootstrap intervals over the test queries. The configuration
# called best is chosen on the *validation* trials, by the three scores the rows are
# judged on (instance Recall@5 + class-aware Recall@1 + instance MAP, each validation
# trial ranking the validation bank), before any test score is read; the table marks
# it in `chosen on validation`.

# %%
best = max(runs, key=lambda run: run.selection_score)
print(f"Chosen on validation: {best.label}")
# On the twin, the ideal observer's retrieval on the same trials is the EEG ceiling.
ceiling_rows = []
if data.twin is not None:
    ceiling = bayes_ceiling(data, split, n_boot=n_boot, seed=seed)
    ceiling_rows = [reference_row(ceiling.retrieval, CEILING_QUERIES)]
table = ablation_table([image_row, *ceiling_rows, *reference_rows,
                        *(run.summary_row(chosen_on_validation=run is best) for run in runs),
                        runs[0].chance_row()])
if ceiling_rows:
    table = with_fraction_of_ceiling(table)
save_table(table, "05_ablation", figures_dir)
labels = ["queries", "loss", "text encoder", "EEG encoder"]
display(table[labels + ["Recall@5 (instance)", "Recall@1 (class-aware)", "MAP (instance)", "MAP (class-aware)",
                        "BLEU-4", "BERTScore F1", "CLIPScore AUC", "chosen on validation"]].round(3))
display(table[labels + ["trainable EEG params", "trainable text params", "seconds per epoch",
                        "process peak memory MB"]].dropna(subset=["trainable EEG params"]))

# %% [markdown]
# ## Does the chosen configuration beat chance and the two reference rows?
# On the test trials: its intervals against chance, and its scores against
# classify-then-retrieve and the linear map on the three scores it was chosen by.

# %%
display(chance_verdicts(best.test.scores).round(3))
versus = versus_references(table)
save_table(versus.round(4), "05_versus_references", figures_dir)
display(versus.round(3))

# %% [markdown]
# ## Beyond the category?
# Each test trial ranks only the captions of its own category: a ranker that knows the
# category and nothing else (classify-then-retrieve) is exactly at chance here, so
# any score above chance is information about *which* image of the category was seen
# (its colour, background, position), not only about its category.

# %%
within = pd.concat([
    within_category(ranked, n_boot=n_boot, seed=seed).assign(queries=name)
    for name, ranked in [(f"images ({clip.label})", images), (reference_rows[0]["queries"], via_class),
                         (reference_rows[1]["queries"], linear.test), (f"EEG ({best.label})", best.test)]
], ignore_index=True)[["queries", "metric", "value", "ci_low", "ci_high", "chance"]]
save_table(within.round(4), "05_within_category", figures_dir)
display(within.round(3))

# %%
# In-batch accuracy of the caption itself, and of its category (any caption of the trial's
# category ranked first among the batch's captions).
fig = plots.plot_learning_curves({run.label: run.fit.history for run in runs}, loss_label="training objective",
                                 acc_label="in-batch caption accuracy", chance=None,
                                 extra_panels={"category_acc": "in-batch category accuracy"})
save_figure(fig, "05_learning_curves", figures_dir, synthetic=synthetic)

# %%
per_class = pd.concat([
    metrics.per_class_map(images.per_query).assign(queries=f"images ({clip.label})"),
    metrics.per_class_map(best.test.per_query).assign(queries=f"EEG ({best.label})"),
])
fig = plots.plot_per_class_map(per_class, title="Instance-level MAP per category: image vs best EEG queries")
save_figure(fig, "05_per_class_map", figures_dir, synthetic=synthetic)

# %%
fig = plots.plot_score_distributions(best.test.matched, best.test.mismatched,
                                     xlabel="CLIPScore-style similarity, EEG vs caption",
                                     title=f"{best.label}: matched vs mismatched pairs")
save_figure(fig, "05_clipscore", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## A few EEG queries and their top-5 captions
# Each row is one test trial, shown by the image the person saw.

# %%
shown = example_queries(len(test_rows), n_examples, seed)
fig = plots.plot_retrieval_gallery(
    test_rows.image_path.to_numpy()[shown], best.test.top_captions(shown), test_rows.caption.to_numpy()[shown],
    titles=[f"{s} trial {t}" for s, t in zip(test_rows.subject.to_numpy()[shown], test_rows.trial.to_numpy()[shown])])
save_figure(fig, "05_eeg_queries", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Across subjects
# The best configuration again, trained on all subjects but one and tested on the
# held-out subject (its projection head is the mean of the others'). The Task 1
# encoder saw the held-out subject's sessions, so it is not reused here: the encoder
# starts from random weights and trains. For the same reason the Task 1 classifier's
# category prior is not used: a configuration with a category prior ranks with its own
# category head, trained in this run.

# %%
cross_config = dataclasses.replace(best.config, train_eeg_encoder=True)
secondary = [run_retrieval(data, make_split(data.trials, protocol, seed=seed), clip, cross_config,
                           eeg_config, checkpoint_dir, n_boot=n_boot, bertscore_model=bert_model,
                           normalization=normalization)
             for protocol in secondary_protocols]
if secondary:
    cross = ablation_table([run.summary_row() for run in secondary] + [run.chance_row() for run in secondary])
    save_table(cross, "05_ablation_cross_subject", figures_dir)
    display(cross[["queries", "loss", "text encoder", "EEG encoder", "protocol", "Recall@5 (instance)",
                   "Recall@1 (class-aware)", "MAP (instance)"]].round(3))

# %% [markdown]
# ## Try this
# 1. In the InfoNCE cell, change `[:8]` to `[:16]`, then write `tau = 1.0`: the chance
#    column becomes log 16, and at a high temperature every pair looks alike, so the
#    loss moves towards chance. The library still agrees with the hand computation.
# 2. Train the symmetric InfoNCE of CLIP: add `{"lambdas": {"infonce": 1.0}, "symmetric": True}`
#    to `loss_configs` and compare its row with the naive InfoNCE row.
# 3. Set `init_from_task1 = False`: the frozen EEG encoder is then random. How much of
#    each EEG row's score came from the Task 1 encoder?
# 4. Set `strategies = ["frozen", "lora"]` and `strategy_loss = {"lambdas": {"debiased": 1.0}}`:
#    does LoRA still help with another loss?
