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
# # 01 Data exploration (handout sections 2.2 to 2.7)
#
# What ds005589 looks like before any model sees it: how many trials each subject
# and session has, whether the 20 categories are balanced, what one trial's 122
# channels look like, the evoked responses per category, the scalp map at the N1
# peak, the power spectrum, and some images with their captions.

# %% tags=["parameters"]
data_dir = ""  # ds005589 root; empty: $EEGKIT_DATA, else the synthetic twin
twin_preset = "default"  # twin size when no real data is given: tiny, default, full
seed = 0
subjects = "handout"  # "handout" (the 13), "complete", or a list of IDs
figures_dir = "../figures"  # relative to notebooks/, where Jupyter runs them
n_example_images = 8

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import eegkit
from eegkit.data import explore
from eegkit.report import plots
from eegkit.report.figures import save_figure, save_table
from eegkit.data.splits import make_split

data = eegkit.open_dataset(data_dir, twin_preset=twin_preset, seed=seed, subjects=subjects)
synthetic = data.twin is not None  # figures of the twin are marked "synthetic data"
display(Markdown(eegkit.data_banner(data)))
print(f"{len(data)} trials, {len(data.subjects)} subjects, {data.n_chans} channels x "
      f"{data.n_times} samples at {data.sfreq:g} Hz, {len(data.captions)} images")

# %% [markdown]
# ## Trials per subject and session, and class balance

# %%
counts = explore.trial_counts(data.trials)
save_figure(plots.plot_trial_counts(counts), "01_trial_counts", figures_dir,
            synthetic=synthetic)
balance = explore.class_balance(data.trials)
save_table(balance, "01_class_balance", figures_dir)
save_figure(plots.plot_class_balance(balance), "01_class_balance", figures_dir,
            synthetic=synthetic)
split = make_split(data.trials)
save_table(split.summary(data.trials), "01_split_summary", figures_dir)
print(split.description)
split.summary(data.trials)

# %% [markdown]
# ## One trial, all channels

# %%
first = data.trials.iloc[0]
fig = plots.plot_trial(data.get_trials([0])[0], data.sfreq, data.channel_names,
                       title=f"{first.subject} {first.session} {first.run} trial 0: {first.category}")
save_figure(fig, "01_one_trial", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Grand-average evoked responses per category
# Averaged over the training sessions only, over posterior electrodes where visual
# responses are largest.

# %%
erp = explore.grand_average(data, split.train)
posterior = explore.channel_indices(data)
fig = plots.plot_erps(erp, data.sfreq, posterior, "posterior channels")
save_figure(fig, "01_grand_average_erp", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Scalp topography at the N1 peak

# %%
mean_erp = np.nanmean(erp, axis=0)
n1_latency = explore.peak_time(mean_erp[posterior].mean(axis=0), data.sfreq)
n1_sample = int(round(n1_latency * data.sfreq))
fig = plots.plot_topomap(mean_erp[:, n1_sample], data.channel_names, data.sfreq,
                         f"N1 at {1000 * n1_latency:.0f} ms, all categories")
save_figure(fig, "01_topomap_n1", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Power spectrum

# %%
rng = np.random.default_rng(seed)
sample = rng.choice(split.train, size=min(500, len(split.train)), replace=False)
freqs, psd = explore.power_spectrum(data, sample)
occipital = explore.channel_indices(data, ("O1", "Oz", "O2", "POz"))
fig = plots.plot_spectrum(freqs, psd, occipital, "occipital channels")
save_figure(fig, "01_power_spectrum", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Some images and their captions

# %%
if data.has_images:  # the published OpenNeuro copy has no images
    examples = data.captions.groupby("category_id").head(1).head(n_example_images)
    fig = plots.plot_images(examples["image_path"].tolist(), examples["caption"].tolist())
    save_figure(fig, "01_example_images", figures_dir, synthetic=synthetic)
else:
    print(f"This copy has no images (missing: {', '.join(data.missing)}); see README, "
          "'Using the published OpenNeuro copy'.")
plt.show()

# %% [markdown]
# ## Try this
# 1. Look at frontal instead of posterior electrodes: in the evoked-response cell, write
#    `posterior = explore.channel_indices(data, ("Fz", "FCz", "Cz"))`. Are the
#    category differences smaller away from the visual cortex?
# 2. In the topography cell, add `n1_sample += int(0.1 * data.sfreq)` before the plot
#    to map the scalp 100 ms after the N1 peak. Where is the activity now?
# 3. Set `subjects = ["sub-02", "sub-03"]` in the parameters cell and rerun: how do the
#    trial counts, the class balance and the split summary change?
