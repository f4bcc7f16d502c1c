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
# # 02 Baselines for EEG classification (handout section 4.4)
#
# Two established network baselines on the session split (3 sessions train, 1
# validation, 1 test per subject): Wang et al.'s fully connected network, the dataset
# paper's own validation model, and ShallowConvNet (Schirrmeister et al., 2017;
# braindecode's implementation; EEGNet is one parameter away). Beside them, the two
# classical references of the EEG decoding (MVPA) literature: shrinkage LDA and
# L2-regularised logistic regression on 50 ms time bins of every channel, z-scored per
# subject with training statistics (`eegkit.models.classical`). Wang et al.'s network
# and the classical references are also run in the within-session setting (Wang et
# al. report about 10 %) and across subjects.
# Every score comes with chance, a 95 % bootstrap CI and a permutation p-value, all
# on the test split, never on training data.

# %% tags=["parameters"]
data_dir = ""  # ds005589 root; empty: $EEGKIT_DATA, else the synthetic twin
twin_preset = "default"
seed = 0
subjects = "handout"
figures_dir = "../figures"  # relative to notebooks/, where Jupyter runs them
checkpoint_dir = "../build/checkpoints"
device = "auto"  # "cpu", "cuda" or "auto"
# "lda" (shrinkage LDA) and "logistic": the classical references, on binned voltages
models = ["wang_fc", "shallow", "lda", "logistic"]  # add "eegnet" for EEGNet-4,2
max_epochs = 8
batch_size = 64
lr = 1e-3
secondary_protocols = ["within_session", "cross_subject"]
secondary_models = ["wang_fc", "lda", "logistic"]
secondary_max_epochs = 8
n_boot = 1000
n_perm = 1000

# %%
import pandas as pd
from IPython.display import Markdown, display

import eegkit
from eegkit.report import plots
from eegkit.classification import run_classification
from eegkit.models.classical import CLASSICAL_MODELS
from eegkit.report.figures import save_figure, save_table
from eegkit.data.splits import make_split
from eegkit.train import TrainConfig

data = eegkit.open_dataset(data_dir, twin_preset=twin_preset, seed=seed, subjects=subjects)
synthetic = data.twin is not None  # figures of the twin are marked "synthetic data"
display(Markdown(eegkit.data_banner(data)))
config = TrainConfig(max_epochs=max_epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
split = make_split(data.trials, "session")
print(split.description)

# %% [markdown]
# ## Training on the session split

# %%
runs = [run_classification(data, split, name, config, checkpoint_dir, n_boot=n_boot, n_perm=n_perm)
        for name in models]
fig = plots.plot_learning_curves({run.label: run.fit.history for run in runs if run.model_name not in CLASSICAL_MODELS})
save_figure(fig, "02_learning_curves", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Wang et al.'s network and the classical references in the other protocols
# Within-session: each (subject, session)'s trials are split 60/20/20 % by category,
# the setting in which Wang et al. report about 10 % (chance 5 %). Cross-subject: the
# last subject is held out for testing, the one before it for validation.

# %%
secondary_config = TrainConfig(max_epochs=secondary_max_epochs, batch_size=batch_size, lr=lr,
                               seed=seed, device=device)
secondary = [run_classification(data, make_split(data.trials, protocol, seed=seed), name,
                                secondary_config, checkpoint_dir, n_boot=n_boot, n_perm=n_perm)
             for protocol in secondary_protocols for name in secondary_models]

# %% [markdown]
# ## Test scores

# %%
results = pd.concat([run.results_rows() for run in runs + secondary], ignore_index=True)
save_table(results.round(4), "02_results", figures_dir)
fig = plots.plot_scores(results, title="Baselines: test accuracy (95 % CI)")
save_figure(fig, "02_scores", figures_dir, synthetic=synthetic)
results[["model", "protocol", "metric", "value", "ci_low", "ci_high", "chance", "p_value"]].round(3)

# %% [markdown]
# ## Confusion matrix and per-subject accuracy (session split)

# %%
# the baseline shown is the one best on validation: choosing it on test would be a
# choice made on the test split
best = max(runs, key=lambda run: run.validation_accuracy)
save_figure(plots.plot_confusion(best.confusion, f"{best.label}, session split, test"),
            "02_confusion_matrix", figures_dir, synthetic=synthetic)
per_subject = pd.concat([run.per_subject.assign(model=run.label) for run in runs], ignore_index=True)
save_table(per_subject.round(4), "02_per_subject", figures_dir)
fig = plots.plot_per_subject(per_subject, 1 / len(eegkit.CATEGORIES), "Baselines: test accuracy per subject (session split)")
save_figure(fig, "02_per_subject", figures_dir, synthetic=synthetic)

# %% [markdown]
# ## Try this
# 1. Add `"eegnet"` to `models` (EEGNet-4,2 is one parameter away from ShallowConvNet)
#    and compare its row with ShallowConvNet's in the test-score table.
# 2. Set `max_epochs = 2`, then `max_epochs = 30`: in the learning curves, when does
#    the validation loss stop improving, and which epoch's weights are kept?
# 3. Set `lr = 1e-2` (ten times larger): do the networks still train smoothly?
# 4. Set `n_perm = 100`: the smallest possible p-value becomes 1/101. Which
#    conclusions in the table depend on having run more permutations?
