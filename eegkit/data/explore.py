"""Summaries a researcher looks at first: counts, evoked responses, spectra."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.signal import welch

from eegkit.data.channels import CATEGORIES
from eegkit.data.loading import EEGData

#: Electrodes over visual cortex, where the evoked responses to images are largest.
POSTERIOR_CHANNELS = ("PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2")


def trial_counts(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials per subject (rows) and session (columns)."""
    return trials.pivot_table(index="subject", columns="session", values="trial",
                              aggfunc="size", fill_value=0)


def class_balance(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials and distinct images per category, in label order."""
    counts = trials.groupby("category_id").agg(
        n_trials=("trial", "size"), n_images=("image_id", "nunique")
    )
    counts = counts.reindex(range(len(CATEGORIES)), fill_value=0)
    counts.insert(0, "category", CATEGORIES)
    return counts.reset_index()


def grand_average(data: EEGData, rows: Sequence[int], chunk: int = 1024) -> np.ndarray:
    """Mean evoked response of each category over the given trials.

    Parameters
    ----------
    data : EEGData
    rows : sequence of int
        Trials to average (row positions of ``data.trials``).
    chunk : int, default=1024
        Trials read at a time.

    Returns
    -------
    erp : ndarray, shape (n_categories, n_chans, n_times), µV
        NaN for a category with no trial among ``rows``.
    """
    rows = np.sort(np.asarray(rows))
    y = data.trials["category_id"].to_numpy()
    total = np.zeros((len(CATEGORIES), data.n_chans, data.n_times))
    count = np.zeros(len(CATEGORIES))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        X = data.get_trials(part).astype(np.float64)
        np.add.at(total, y[part], X)
        count += np.bincount(y[part], minlength=len(CATEGORIES))
    with np.errstate(invalid="ignore"):
        return total / count[:, None, None]


def channel_indices(data: EEGData, names: Sequence[str] = POSTERIOR_CHANNELS) -> np.ndarray:
    """Positions of the named electrodes in ``data.channel_names`` (missing names skipped)."""
    index = {name: i for i, name in enumerate(data.channel_names)}
    found = [index[n] for n in names if n in index]
    if not found:
        raise ValueError(f"none of {list(names)} is among the data's channels")
    return np.array(found)


def peak_time(erp: np.ndarray, sfreq: float, window_seconds: tuple[float, float] = (0.13, 0.21),
              polarity: int = -1) -> float:
    """Latency of the largest peak of a waveform inside a window.

    Parameters
    ----------
    erp : ndarray, shape (n_times,), µV
    sfreq : float
        Hz.
    window_seconds : (float, float), default=(0.13, 0.21)
        Search window after onset, in s (the N1 by default).
    polarity : {-1, 1}, default=-1
        -1 finds the most negative point (N1), 1 the most positive (P1, P2).

    Returns
    -------
    latency : float, s
    """
    times = np.arange(len(erp)) / sfreq
    inside = np.flatnonzero((times >= window_seconds[0]) & (times <= window_seconds[1]))
    if len(inside) == 0:
        raise ValueError(f"window {window_seconds} s lies outside the epoch (0 to {times[-1]:.3f} s)")
    return float(times[inside[np.argmax(polarity * erp[inside])]])


def power_spectrum(data: EEGData, rows: Sequence[int], seconds_per_segment: float = 0.5):
    """Welch power spectral density, averaged over trials.

    Parameters
    ----------
    data : EEGData
    rows : sequence of int
    seconds_per_segment : float, default=0.5
        Welch segment length (s); the whole 0.5 s epoch gives 2 Hz resolution.

    Returns
    -------
    freqs : ndarray, shape (n_freqs,), Hz
    psd : ndarray, shape (n_chans, n_freqs), µV²/Hz
    """
    X = data.get_trials(np.sort(np.asarray(rows)))
    nperseg = min(data.n_times, int(round(seconds_per_segment * data.sfreq)))
    freqs, psd = welch(X, fs=data.sfreq, nperseg=nperseg, axis=-1)
    return freqs, psd.mean(axis=0)
