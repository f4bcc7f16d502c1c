"""Figures of the exploration notebook. Each function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from eegkit.channels import CATEGORIES, make_info


def plot_trial_counts(counts: pd.DataFrame):
    """Heat map of trials per subject x session (from :func:`eegkit.explore.trial_counts`)."""
    fig, ax = plt.subplots(figsize=(1.2 * counts.shape[1] + 2, 0.35 * counts.shape[0] + 1.5))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set(title="Trials per subject and session", xlabel="session", ylabel="subject")
    return fig


def plot_class_balance(balance: pd.DataFrame):
    """Bar chart of trials per category (from :func:`eegkit.explore.class_balance`)."""
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
