"""Figures of the notebooks. Each function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from eegkit.data.channels import CATEGORIES, make_info


def plot_trial_counts(counts: pd.DataFrame):
    """Heat map of trials per subject x session (from :func:`eegkit.data.explore.trial_counts`)."""
    fig, ax = plt.subplots(figsize=(1.2 * counts.shape[1] + 2, 0.35 * counts.shape[0] + 1.5))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set(title="Trials per subject and session", xlabel="session", ylabel="subject")
    return fig


def plot_class_balance(balance: pd.DataFrame):
    """Bar chart of trials per category (from :func:`eegkit.data.explore.class_balance`)."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    sns.barplot(data=balance, x="category", y="n_trials", color="tab:blue", ax=ax)
    ax.tick_params(axis="x", rotation=60)
    ax.set(title="Trials per category", xlabel="", ylabel="trials")
    return fig


def plot_trial(X: np.ndarray, sfreq: float, channel_names: Sequence[str], title: str = ""):
    """All channels of one trial, stacked.

    Parameters
    ----------
    X : ndarray, shape (n_chans, n_times), µV
    sfreq : float
        Hz.
    channel_names : sequence of str
    """
    times_ms = 1000 * np.arange(X.shape[1]) / sfreq
    spacing = 3 * np.median(X.std(axis=1))
    fig, ax = plt.subplots(figsize=(8, 12))
    offsets = spacing * np.arange(len(X))[::-1]
    ax.plot(times_ms, X.T + offsets, lw=0.5, color="k")
    step = max(1, len(X) // 30)
    ax.set_yticks(offsets[::step], [channel_names[i] for i in range(0, len(X), step)], fontsize=7)
    ax.set(xlabel="time after image onset (ms)", title=title or "One trial, all channels")
    ax.margins(x=0, y=0.005)
    return fig


def plot_erps(erp: np.ndarray, sfreq: float, channels: np.ndarray, channel_label: str):
    """Grand-average evoked response of every category over a group of channels.

    Parameters
    ----------
    erp : ndarray, shape (n_categories, n_chans, n_times), µV
    sfreq : float
        Hz.
    channels : ndarray of int
        Channels to average.
    channel_label : str
        How the legend names that group.
    """
    times_ms = 1000 * np.arange(erp.shape[2]) / sfreq
    waves = erp[:, channels].mean(axis=1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    palette = sns.color_palette("husl", len(CATEGORIES))
    for c, wave in enumerate(waves):
        ax.plot(times_ms, wave, color=palette[c], lw=1, label=CATEGORIES[c])
    ax.plot(times_ms, np.nanmean(waves, axis=0), color="k", lw=2.5, label="all categories")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="time after image onset (ms)", ylabel="µV",
           title=f"Grand-average evoked response per category ({channel_label})")
    ax.legend(ncol=3, fontsize=7, loc="upper right")
    return fig


def plot_topomap(values: np.ndarray, channel_names: Sequence[str], sfreq: float, title: str):
    """Scalp map of one value per channel on the 10-05 template head.

    Parameters
    ----------
    values : ndarray, shape (n_chans,), µV
    """
    import mne

    fig, ax = plt.subplots(figsize=(4.5, 4))
    im, _ = mne.viz.plot_topomap(values, make_info(channel_names, sfreq), axes=ax, show=False,
                                 cmap="RdBu_r", contours=6)
    fig.colorbar(im, ax=ax, label="µV", shrink=0.8)
    ax.set_title(title)
    return fig


def plot_spectrum(freqs: np.ndarray, psd: np.ndarray, channels: np.ndarray, channel_label: str):
    """Power spectrum (log scale) averaged over a channel group, alpha band shaded.

    Parameters
    ----------
    freqs : ndarray, shape (n_freqs,), Hz
    psd : ndarray, shape (n_chans, n_freqs), µV²/Hz
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(freqs, psd.mean(axis=0), color="grey", label="all channels")
    ax.semilogy(freqs, psd[channels].mean(axis=0), color="tab:red", label=channel_label)
    ax.axvspan(8, 12, color="gold", alpha=0.3, label="alpha 8-12 Hz")
    ax.set(xlabel="frequency (Hz)", ylabel="power (µV²/Hz)", title="Power spectrum over trials",
           xlim=(0, min(100, freqs[-1])))
    ax.legend()
    return fig


def plot_images(image_paths: Sequence[str], captions: Sequence[str], n_cols: int = 4):
    """A grid of stimulus images with their captions."""
    n = len(image_paths)
    n_rows = int(np.ceil(n / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.6 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, caption in zip(axes.flat, image_paths, captions):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        words = caption.split()
        half = (len(words) + 1) // 2
        ax.set_title(" ".join(words[:half]) + "\n" + " ".join(words[half:]), fontsize=9)
    return fig


def plot_learning_curves(histories: dict[str, pd.DataFrame], loss_label: str = "cross-entropy",
                         acc_label: str = "accuracy", chance: float | None = 1 / len(CATEGORIES)):
    """Train and validation loss and accuracy per epoch, one colour per model.

    Parameters
    ----------
    histories : dict of str -> DataFrame
        ``FitResult.history`` of each model, keyed by its label.
    loss_label, acc_label : str
        Axis labels (retrieval runs track a combined loss and in-batch caption accuracy).
    chance : float or None, default=1/20
        Drawn on the accuracy panel when given.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    palette = sns.color_palette("tab10", len(histories))
    for colour, (label, history) in zip(palette, histories.items()):
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(history["epoch"], history[f"train_{metric}"], "--", color=colour, alpha=0.7)
            ax.plot(history["epoch"], history[f"val_{metric}"], "-o", color=colour, ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel=loss_label, title="Loss (dashed: train, solid: validation)")
    if chance is not None:
        ax_acc.axhline(chance, color="grey", ls=":", label="chance")
    ax_acc.set(xlabel="epoch", ylabel=acc_label,
               title=f"{acc_label.capitalize()} (dashed: train, solid: validation)")
    ax_acc.legend(fontsize=8)
    return fig


def plot_confusion(matrix: np.ndarray, title: str):
    """Row-normalised 20 x 20 confusion matrix with category names."""
    fig, ax = plt.subplots(figsize=(8, 7))
    sns.heatmap(matrix, cmap="viridis", vmin=0, square=True, ax=ax,
                xticklabels=CATEGORIES, yticklabels=CATEGORIES,
                cbar_kws={"label": "share of the true class's test trials"})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(labelsize=7)
    return fig


def plot_per_subject(per_subject: pd.DataFrame, chance: float, title: str):
    """Test accuracy per subject with 95 % bootstrap intervals and the chance line.

    Parameters
    ----------
    per_subject : DataFrame
        Columns ``model``, ``subject``, ``accuracy``, ``ci_low``, ``ci_high`` (rows of
        :func:`eegkit.metrics.per_subject_accuracy` with a model column).
    chance : float
    """
    models = list(dict.fromkeys(per_subject["model"]))
    subjects = list(dict.fromkeys(per_subject["subject"]))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(subjects) * len(models) + 2), 4))
    palette = sns.color_palette("tab10", len(models))
    for k, model in enumerate(models):
        rows = per_subject[per_subject["model"] == model].set_index("subject").loc[subjects]
        x = np.arange(len(subjects)) + (k - (len(models) - 1) / 2) * width
        ax.bar(x, rows["accuracy"], width, color=palette[k], label=model)
        ax.errorbar(x, rows["accuracy"], yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                    fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax.axhline(chance, color="red", ls="--", label=f"chance ({chance:.0%})")
    ax.set_xticks(np.arange(len(subjects)), subjects, rotation=45)
    ax.set(ylabel="test accuracy", title=title)
    ax.legend(fontsize=8)
    return fig


def plot_scores(results: pd.DataFrame, metric: str = "accuracy", title: str = ""):
    """One bar per (model, protocol) with its 95 % CI and chance line.

    Parameters
    ----------
    results : DataFrame
        Rows of ``ClassificationRun.results_rows()``.
    """
    rows = results[results["metric"] == metric].reset_index(drop=True)
    labels = [f"{m}\n({p})" for m, p in zip(rows["model"], rows["protocol"])]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    ax.bar(labels, rows["value"], color=sns.color_palette("tab10", len(rows)))
    ax.errorbar(labels, rows["value"], yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                fmt="none", ecolor="k", capsize=4)
    ax.axhline(rows["chance"].iloc[0], color="red", ls="--", label="chance")
    ax.set(ylabel=f"test {metric.replace('_', ' ')}", title=title or f"Test {metric.replace('_', ' ')} (95 % CI)")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend()
    return fig


# --- caption retrieval (notebooks 04 and 05) ---------------------------------------


def plot_per_class_map(per_class: pd.DataFrame, title: str = ""):
    """Mean average precision per category, one bar group per query kind, chance as ticks.

    Parameters
    ----------
    per_class : DataFrame
        Columns ``category``, ``map``, ``chance`` and optionally ``queries`` (e.g.
        "images", "EEG"): rows of :func:`eegkit.metrics.per_class_map`, stacked with
        a label column.
    """
    if "queries" not in per_class:
        per_class = per_class.assign(queries="queries")
    kinds = list(dict.fromkeys(per_class["queries"]))
    categories = sorted(per_class["category"].unique())
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(11, 4))
    palette = sns.color_palette("tab10", len(kinds))
    for k, kind in enumerate(kinds):
        rows = per_class[per_class["queries"] == kind].set_index("category").reindex(categories)
        x = np.arange(len(categories)) + (k - (len(kinds) - 1) / 2) * width
        ax.bar(x, rows["map"], width, color=palette[k], label=kind)
        ax.scatter(x, rows["chance"], marker="_", s=120, color="red", zorder=3,
                   label="chance" if k == 0 else None)
    ax.set_xticks(np.arange(len(categories)), categories, rotation=45, ha="right")
    ax.set(ylabel="MAP", title=title or "Mean average precision per category")
    ax.legend(fontsize=8)
    return fig


def plot_bertscore_hist(f1: np.ndarray, threshold: float = 0.7, model_name: str = "", title: str = ""):
    """Histogram of BERTScore F1 between top-ranked and true captions, with the threshold line."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(f1, bins=30, color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="red", ls="--",
               label=f"F1 = {threshold} ({np.mean(np.asarray(f1) > threshold):.0%} above)")
    ax.set(xlabel=f"BERTScore F1 ({model_name})" if model_name else "BERTScore F1",
           ylabel="queries", title=title or "BERTScore of the top-ranked caption")
    ax.legend(fontsize=8)
    return fig


def plot_score_distributions(matched: np.ndarray, mismatched: np.ndarray, xlabel: str = "CLIPScore",
                             title: str = ""):
    """Matched versus mismatched pair scores, side by side (histograms with shared bins)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([matched, mismatched]), bins=40)
    ax.hist(mismatched, bins=bins, alpha=0.6, color="tab:grey", label=f"mismatched (mean {np.mean(mismatched):.2f})")
    ax.hist(matched, bins=bins, alpha=0.6, color="tab:green", label=f"matched (mean {np.mean(matched):.2f})")
    ax.set(xlabel=xlabel, ylabel="pairs", title=title or f"{xlabel}: matched vs mismatched pairs")
    ax.legend(fontsize=8)
    return fig


def plot_retrieval_gallery(image_paths: Sequence[str], top_captions: Sequence[Sequence[str]],
                           true_captions: Sequence[str], titles: Sequence[str] | None = None):
    """Query images (or EEG trials, shown by their image) with their top-ranked captions.

    The true caption is marked with a check and drawn in green; captions of other
    images are listed in order, best first.

    Parameters
    ----------
    image_paths : sequence of str
        One image per query (for EEG queries, the image the trial showed).
    top_captions : sequence of sequence of str
        The top-k captions of each query, best first.
    true_captions : sequence of str
    titles : sequence of str, optional
        A title per query (e.g. subject and trial).
    """
    n = len(image_paths)
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.2 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 3.5]})
    for row, (path, tops, truth) in enumerate(zip(image_paths, top_captions, true_captions)):
        ax_image, ax_text = axes[row]
        with Image.open(path) as image:
            ax_image.imshow(image.convert("RGB"))
        ax_image.axis("off")
        if titles is not None:
            ax_image.set_title(titles[row], fontsize=8)
        ax_text.axis("off")
        for k, caption in enumerate(tops):
            hit = caption == truth
            ax_text.text(0, 0.9 - 0.18 * k, f"{k + 1}. {caption}" + ("  \u2713" if hit else ""),
                         color="green" if hit else "black", fontweight="bold" if hit else "normal",
                         fontsize=9, transform=ax_text.transAxes, va="top")
        if truth not in tops:
            ax_text.text(0, 0.9 - 0.18 * len(tops), f"true: {truth}", color="grey", style="italic",
                         fontsize=8, transform=ax_text.transAxes, va="top")
    fig.tight_layout()
    return fig
