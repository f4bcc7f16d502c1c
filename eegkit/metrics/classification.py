"""Classification scores with their chance level, bootstrap interval and p-value.

Every score is reported with what random guessing would give, a 95 % bootstrap
confidence interval (trials resampled with replacement) and a permutation-test
p-value (labels shuffled against the predictions). All functions take integer labels
``y`` of shape (n_trials,) and either predictions ``y_hat`` (n_trials,) or scores
``logits`` (n_trials, n_classes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from eegkit.data.channels import CATEGORIES

N_CLASSES = len(CATEGORIES)


def accuracy(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Share of trials predicted correctly."""
    return float(np.mean(np.asarray(y) == np.asarray(y_hat)))


def balanced_accuracy(y: np.ndarray, y_hat: np.ndarray, n_classes: int = N_CLASSES) -> float:
    """Mean over the classes present in ``y`` of each class's recall."""
    y, y_hat = np.asarray(y), np.asarray(y_hat)
    hits = np.bincount(y[y == y_hat], minlength=n_classes)
    totals = np.bincount(y, minlength=n_classes)
    present = totals > 0
    return float(np.mean(hits[present] / totals[present]))


def top_k_accuracy(y: np.ndarray, logits: np.ndarray, k: int = 5) -> float:
    """Share of trials whose true class is among the ``k`` highest scores."""
    top = np.argpartition(-np.asarray(logits), kth=k - 1, axis=1)[:, :k]
    return float(np.mean((top == np.asarray(y)[:, None]).any(axis=1)))


def confusion_matrix(y: np.ndarray, y_hat: np.ndarray, n_classes: int = N_CLASSES,
                     normalize: bool = True) -> np.ndarray:
    """Counts (or, with ``normalize``, row shares) of true class (rows) x predicted (columns).

    Returns
    -------
    matrix : ndarray, shape (n_classes, n_classes)
        With ``normalize``, each row with trials sums to 1.
    """
    matrix = np.zeros((n_classes, n_classes))
    np.add.at(matrix, (np.asarray(y), np.asarray(y_hat)), 1)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return matrix


def bootstrap_ci(metric: Callable[[np.ndarray], float], n_trials: int, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(indices)`` over resampled trials.

    Parameters
    ----------
    metric : callable
        Score of the trials at the given indices (with repeats).
    n_trials : int
    n_boot : int, default=1000
    level : float, default=0.95
    seed : int, default=0

    Returns
    -------
    low, high : float
    """
    rng = np.random.default_rng(seed)
    scores = [metric(rng.integers(0, n_trials, n_trials)) for _ in range(n_boot)]
    alpha = (1 - level) / 2
    low, high = np.quantile(scores, [alpha, 1 - alpha])
    return float(low), float(high)


def permutation_p_value(metric: Callable[[np.ndarray], float], y: np.ndarray, observed: float,
                        n_perm: int = 1000, seed: int = 0) -> float:
    """One-sided p-value of ``observed`` against chance, by shuffling the labels.

    ``metric(y_perm)`` scores the predictions against permuted labels. The p-value
    is ``(1 + #{perm >= observed}) / (1 + n_perm)``, so it is never 0.
    """
    rng = np.random.default_rng(seed)
    null = np.array([metric(rng.permutation(y)) for _ in range(n_perm)])
    return float((1 + np.sum(null >= observed)) / (1 + n_perm))


def score_table(y: np.ndarray, logits: np.ndarray, n_boot: int = 1000, n_perm: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Accuracy, balanced accuracy and top-5 accuracy with chance, 95 % CI and p-value.

    Parameters
    ----------
    y : ndarray of int, shape (n_trials,)
    logits : ndarray, shape (n_trials, n_classes)

    Returns
    -------
    table : DataFrame
        One row per metric: ``metric``, ``value``, ``ci_low``, ``ci_high``,
        ``chance``, ``p_value``, ``n_trials``.
    """
    y = np.asarray(y)
    logits = np.asarray(logits)
    n_classes = logits.shape[1]
    y_hat = logits.argmax(axis=1)
    correct_top5 = (np.argpartition(-logits, kth=4, axis=1)[:, :5] == y[:, None]).any(axis=1)
    metrics = {
        "accuracy": (lambda i: accuracy(y[i], y_hat[i]),
                     lambda yp: accuracy(yp, y_hat), 1 / n_classes),
        "balanced_accuracy": (lambda i: balanced_accuracy(y[i], y_hat[i], n_classes),
                              lambda yp: balanced_accuracy(yp, y_hat, n_classes), 1 / n_classes),
        "top5_accuracy": (lambda i: float(correct_top5[i].mean()),
                          lambda yp: top_k_accuracy(yp, logits, 5), 5 / n_classes),
    }
    rows = []
    for name, (on_indices, on_labels, chance) in metrics.items():
        value = on_indices(np.arange(len(y)))
        low, high = bootstrap_ci(on_indices, len(y), n_boot, seed=seed)
        rows.append({"metric": name, "value": value, "ci_low": low, "ci_high": high,
                     "chance": chance, "p_value": permutation_p_value(on_labels, y, value, n_perm, seed),
                     "n_trials": len(y)})
    return pd.DataFrame(rows)


def per_subject_accuracy(y: np.ndarray, y_hat: np.ndarray, subject: np.ndarray,
                         subject_names: tuple[str, ...] | None = None, n_boot: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """Accuracy of each subject with its 95 % bootstrap interval.

    Returns
    -------
    table : DataFrame
        ``subject``, ``accuracy``, ``ci_low``, ``ci_high``, ``n_trials``.
    """
    y, y_hat, subject = map(np.asarray, (y, y_hat, subject))
    rows = []
    for s in np.unique(subject):
        mask = subject == s
        correct = (y[mask] == y_hat[mask]).astype(float)
        low, high = bootstrap_ci(lambda i: correct[i].mean(), len(correct), n_boot, seed=seed)
        rows.append({"subject": subject_names[s] if subject_names else int(s),
                     "accuracy": correct.mean(), "ci_low": low, "ci_high": high,
                     "n_trials": int(mask.sum())})
    return pd.DataFrame(rows)
