"""Figures of the notebooks. Each function returns a matplotlib Figure."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from eegkit.data.channels import CATEGORIES, make_info

#: Colours after tab10's ten, for plots with more series (none repeats a tab10 hue).
_MORE_COLOURS = ("#556b2f", "#b8860b", "#7fff7f", "#000080", "#ff69b4", "#00ced1", "#8b0000",
                 "#9acd32", "#4b0082", "#a0522d")


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10, then :data:`_MORE_COLOURS` (up to 20)."""
    colours = list(sns.color_palette("tab10", 10)) + list(_MORE_COLOURS)
    if n > len(colours):
        raise ValueError(f"{n} series, but only {len(colours)} distinct colours are defined")
    return colours[:n]


def _wrap(text: str, width: int = 60) -> str:
    """Break a long title or label into lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(text, width)) if text else text


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
    std = X.std(axis=1)
    spacing = 3 * np.median(std)
    # A noisy (bad) channel would cover its neighbours: clip every trace to its own lane
    # and one lane either side, and draw the channels that needed it in red.
    noisy = std > 3 * np.median(std)
    traces = np.clip(X - X.mean(axis=1, keepdims=True), -spacing, spacing)
    fig, ax = plt.subplots(figsize=(8, 11))
    offsets = spacing * np.arange(len(X))[::-1]
    for channel in range(len(X)):
        ax.plot(times_ms, traces[channel] + offsets[channel], lw=0.5,
                color="tab:red" if noisy[channel] else "k")
    step = max(1, len(X) // 30)
    ax.set_yticks(offsets[::step], [channel_names[i] for i in range(0, len(X), step)], fontsize=8)
    ax.set(xlabel="time after image onset (ms)", title=title or "One trial, all channels")
    if noisy.any():
        names = ", ".join(channel_names[i] for i in np.flatnonzero(noisy))
        ax.set_title(f"{ax.get_title()}\nred: noisy channels ({names}), clipped to their lane",
                     fontsize=10)
    ax.margins(x=0, y=0.005)
    return fig


def plot_erps(erp: np.ndarray, sfreq: float, channels: np.ndarray, channel_label: str):
    """Grand-average evoked response of every category over a group of channels.

    Small multiples: one panel per category, each with the mean over all categories
    in grey behind it, so that 20 curves never share one panel.

    Parameters
    ----------
    erp : ndarray, shape (n_categories, n_chans, n_times), µV
    sfreq : float
        Hz.
    channels : ndarray of int
        Channels to average.
    channel_label : str
        How the title names that group.
    """
    times_ms = 1000 * np.arange(erp.shape[2]) / sfreq
    waves = erp[:, channels].mean(axis=1)
    mean = np.nanmean(waves, axis=0)
    n_cols = 5
    n_rows = int(np.ceil(len(waves) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(7.5, 1.25 * n_rows + 1.1), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for ax in axes.flat[len(waves):]:
        ax.axis("off")
    for c, (ax, wave) in enumerate(zip(axes.flat, waves)):
        ax.axhline(0, color="grey", lw=0.4)
        ax.plot(times_ms, mean, color="0.6", lw=1.6)
        ax.plot(times_ms, wave, color="tab:blue", lw=0.9)
        ax.set_title(CATEGORIES[c] if c < len(CATEGORIES) else f"category {c}", fontsize=8, pad=2)
        ax.tick_params(labelsize=7)
    fig.supxlabel("time after image onset (ms)", fontsize=9)
    fig.supylabel("µV", fontsize=9)
    fig.suptitle(f"Grand-average evoked response per category ({channel_label})\n"
                 "blue: the category, grey: mean of all categories", fontsize=9)
    return fig


def plot_topomap(values: np.ndarray, channel_names: Sequence[str], sfreq: float, title: str):
    """Scalp map of one value per channel on the template montage, inside the head.

    Parameters
    ----------
    values : ndarray, shape (n_chans,), µV
    """
    import mne

    info = make_info(channel_names, sfreq)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im, _ = mne.viz.plot_topomap(values, info, axes=ax, show=False, cmap="RdBu_r", contours=6,
                                 sphere=_montage_sphere(info), extrapolate="head")
    fig.colorbar(im, ax=ax, label="µV", shrink=0.8)
    ax.set_title(title, fontsize=10)
    return fig


def _montage_sphere(info) -> tuple[float, float, float, float]:
    """The head sphere for :func:`mne.viz.plot_topomap`, fitted to the montage's electrodes.

    The radius is that of the sphere fitted to the electrodes; the centre is put 0.8
    radius below the fitted one, so that the 10-05 rows below the ears (P9, PO9, Iz,
    ...) are drawn inside the head outline, and the map, which MNE extends to the
    outermost electrode, stays inside the head.
    """
    import mne

    radius, origin, _ = mne.bem.fit_sphere_to_headshape(info, dig_kinds=("eeg",), units="m",
                                                        verbose=False)
    return 0.0, 0.0, float(origin[2] - 0.8 * radius), float(radius)


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
                         acc_label: str = "accuracy", chance: float | None = 1 / len(CATEGORIES),
                         extra_panels: dict[str, str] | None = None):
    """Train and validation loss and accuracy per epoch, one colour per model.

    The legend sits below the panels; every model has its own colour.

    Parameters
    ----------
    histories : dict of str -> DataFrame
        ``FitResult.history`` of each model, keyed by its label.
    loss_label, acc_label : str
        Axis labels (retrieval runs track a combined loss and in-batch caption accuracy).
    chance : float or None, default=1/20
        Drawn on the accuracy panel when given.
    extra_panels : dict of str -> str, optional
        One more panel per entry: a ``StepOutput.extra`` name (the history's
        ``train_<name>`` / ``val_<name>`` columns) and its axis label, e.g.
        ``{"category_acc": "in-batch category accuracy"}``. Histories without both
        columns (runs reused from older checkpoints) are left out of that panel, and
        a panel no history has is not drawn.
    """
    def has(history, metric):
        return f"train_{metric}" in history and f"val_{metric}" in history

    panels = [("loss", loss_label, "Loss"), ("acc", acc_label, acc_label.capitalize())]
    panels += [(name, label, label.capitalize()) for name, label in (extra_panels or {}).items()
               if any(has(history, name) for history in histories.values())]  # no empty panels
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2 + 0.17 * len(histories)),
                             layout="constrained")
    handles = []
    for colour, (label, history) in zip(_colours(len(histories)), histories.items()):
        line = None
        for ax, (metric, _, _) in zip(axes, panels):
            if not has(history, metric):
                continue
            ax.plot(history["epoch"], history[f"train_{metric}"], "--", color=colour, alpha=0.7)
            (line,) = ax.plot(history["epoch"], history[f"val_{metric}"], "-o", color=colour,
                              ms=3, label=label)
        handles.append(line)
    handles += [plt.Line2D([], [], color="black", ls="--", label="training"),
                plt.Line2D([], [], color="black", ls="-", marker="o", ms=3, label="validation")]
    for ax, (_, ylabel, title) in zip(axes, panels):
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    if chance is not None:
        handles.append(axes[1].axhline(chance, color="grey", ls=":", label="chance"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2 if len(histories) > 3 else 6,
               fontsize=8, frameon=False)
    return fig


def plot_confusion(matrix: np.ndarray, title: str):
    """Row-normalised 20 x 20 confusion matrix with category names."""
    fig, ax = plt.subplots(figsize=(6.2, 5.6))  # about the size it has in the reports
    sns.heatmap(matrix, cmap="viridis", vmin=0, square=True, ax=ax,
                xticklabels=CATEGORIES, yticklabels=CATEGORIES,
                cbar_kws={"label": "share of the true class's test trials"})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(labelsize=7.5)
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
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    for k, (model, colour) in enumerate(zip(models, _colours(len(models)))):
        rows = per_subject[per_subject["model"] == model].set_index("subject").loc[subjects]
        x = np.arange(len(subjects)) + (k - (len(models) - 1) / 2) * width
        ax.bar(x, rows["accuracy"], width, color=colour, label=model)
        ax.errorbar(x, rows["accuracy"],
                    yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                    fmt="none", ecolor="k", capsize=1.5, lw=0.7)
    ax.axhline(chance, color="red", ls="--", label=f"chance ({chance:.0%})")
    ax.set_xticks(np.arange(len(subjects)), subjects, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(subjects) - 0.4)
    ax.set_ylabel("test accuracy")
    fig.suptitle(_wrap(title, 80), fontsize=10)
    fig.legend(loc="outside lower center", ncol=len(models) + 1, fontsize=8, frameon=False)
    return fig


def plot_scores(results: pd.DataFrame, metric: str = "accuracy", title: str = ""):
    """One horizontal bar per (model, protocol) with its 95 % CI and the chance line.

    Parameters
    ----------
    results : DataFrame
        Rows of ``ClassificationRun.results_rows()``.
    """
    rows = results[results["metric"] == metric].reset_index(drop=True)
    models = list(dict.fromkeys(rows["model"]))
    colour_of = dict(zip(models, _colours(len(models))))
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(rows) + 1.3), layout="constrained")
    ax.barh(y, rows["value"], color=[colour_of[m] for m in rows["model"]], height=0.7)
    ax.errorbar(rows["value"], y,
                xerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                fmt="none", ecolor="k", capsize=3, lw=0.8)
    ax.axvline(rows["chance"].iloc[0], color="red", ls="--", label="chance")
    labels = [f"{m} ({p.replace('_', ' ')})" for m, p in zip(rows["model"], rows["protocol"])]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    label = metric.replace("_", " ")
    ax.set(xlabel=f"test {label}", title=_wrap(title or f"Test {label} (95 % CI)", 70))
    ax.legend(fontsize=8, loc="best")
    return fig


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
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    for k, (kind, colour) in enumerate(zip(kinds, _colours(len(kinds)))):
        rows = per_class[per_class["queries"] == kind].set_index("category").reindex(categories)
        x = np.arange(len(categories)) + (k - (len(kinds) - 1) / 2) * width
        ax.bar(x, rows["map"], width, color=colour, label=kind)
        ax.scatter(x, rows["chance"], marker="_", s=60, color="red", zorder=3,
                   label="chance" if k == 0 else None)
    ax.set_xticks(np.arange(len(categories)), categories, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    ax.set_ylabel("MAP")
    fig.suptitle(_wrap(title or "Mean average precision per category", 80), fontsize=10)
    fig.legend(loc="outside lower center", ncol=min(3, len(kinds) + 1), fontsize=8, frameon=False)
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


def plot_score_distributions(matched: np.ndarray, mismatched: np.ndarray,
                             xlabel: str = "CLIPScore", title: str = ""):
    """Matched versus mismatched pair scores, side by side (histograms with shared bins)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
    bins = np.histogram_bin_edges(np.concatenate([matched, mismatched]), bins=40)
    ax.hist(mismatched, bins=bins, alpha=0.6, color="tab:grey",
            label=f"mismatched (mean {np.mean(mismatched):.2f})")
    ax.hist(matched, bins=bins, alpha=0.6, color="tab:green",
            label=f"matched (mean {np.mean(matched):.2f})")
    ax.set(xlabel=_wrap(xlabel, 60), ylabel="pairs",
           title=_wrap(title or f"{xlabel}: matched vs mismatched pairs", 55))
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
