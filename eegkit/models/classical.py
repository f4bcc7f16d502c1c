"""Classical references of the EEG decoding (MVPA) literature: shrinkage LDA and logistic regression.

Both work on time-binned voltages: each trial's ``(n_chans, n_times)`` is averaged
in bins of ``bin_seconds`` (50 ms by default: 10 bins of the 0-500 ms epoch), giving
``n_chans * n_bins`` features, which are standardised per subject with statistics
of that subject's training trials (pooled training statistics for a subject with
none, as in the cross-subject protocol). Shrinkage LDA (``solver="lsqr",
shrinkage="auto"``, Ledoit-Wolf) is the standard linear decoder of the MVPA
literature (Grootswagers et al. 2017; Blankertz et al. 2011); L2-regularised
logistic regression is the other common linear choice.

References
----------
Blankertz, B., et al. (2011). Single-trial analysis and classification of ERP
components: a tutorial. NeuroImage 56(2), 814-825.
Grootswagers, T., Wardle, S. G., & Carlson, T. A. (2017). Decoding dynamic brain
patterns from evoked responses: a tutorial on multivariate pattern analysis applied
to time series neuroimaging data. J. Cogn. Neurosci. 29(4), 677-697.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from eegkit._checks import check_option
#: Names of the classical references in :func:`eegkit.classification.run_classification`.
CLASSICAL_MODELS = ("lda", "logistic")
#: Inverse regularisation strengths of the logistic regression tried on validation.
LOGISTIC_CS = (0.001, 0.01, 0.1)


def binned_features(X: np.ndarray, sfreq: float, bin_seconds: float = 0.05) -> np.ndarray:
    """Average each channel in consecutive time bins.

    Parameters
    ----------
    X : ndarray, shape (n_trials, n_chans, n_times), µV
    sfreq : float
        Sampling rate in Hz.
    bin_seconds : float, default=0.05

    Returns
    -------
    features : ndarray, shape (n_trials, n_chans * n_bins), float32
        ``n_bins = round(n_times / sfreq / bin_seconds)`` (at least 1); bins split the
        samples as evenly as possible.
    """
    n_trials, n_chans, n_times = X.shape
    n_bins = max(1, int(round(n_times / sfreq / bin_seconds)))
    edges = np.linspace(0, n_times, n_bins + 1).round().astype(int)
    sums = np.add.reduceat(X.astype(np.float64), edges[:-1], axis=2)
    return (sums / np.diff(edges)).reshape(n_trials, n_chans * n_bins).astype(np.float32)


def trial_features(data, rows, chunk: int = 512, bin_seconds: float = 0.05) -> np.ndarray:
    """:func:`binned_features` of some trials of an ``EEGData``, read ``chunk`` at a time.

    Parameters
    ----------
    data : eegkit.data.EEGData
    rows : sequence of int
        Row positions in ``data.trials``.

    Returns
    -------
    features : ndarray, shape (len(rows), n_chans * n_bins), float32
    """
    rows = np.asarray(rows, dtype=np.int64)
    parts = [binned_features(data.get_trials(rows[start:start + chunk]), data.sfreq, bin_seconds)
             for start in range(0, len(rows), chunk)]
    return np.concatenate(parts)


@dataclass
class SubjectStandardizer:
    """Per-subject z-scoring of features, fitted on training trials only.

    Attributes
    ----------
    mean, std : dict of int -> ndarray, shape (n_features,)
        Statistics of each subject with training trials (by subject index).
    pooled_mean, pooled_std : ndarray, shape (n_features,)
        Statistics of all training trials, for subjects without any.
    """

    mean: dict
    std: dict
    pooled_mean: np.ndarray
    pooled_std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, subject: np.ndarray) -> SubjectStandardizer:
        """Fit on training features (n_trials, n_features) and their subject indices."""
        if len(features) == 0:
            raise ValueError("cannot standardise with zero training trials")
        mean, std = {}, {}
        for s in np.unique(subject):
            rows = features[subject == s]
            mean[int(s)], std[int(s)] = rows.mean(axis=0), rows.std(axis=0) + 1e-8
        return cls(mean, std, features.mean(axis=0), features.std(axis=0) + 1e-8)

    def transform(self, features: np.ndarray, subject: np.ndarray) -> np.ndarray:
        out = np.empty_like(features)
        for s in np.unique(subject):
            rows = subject == s
            mean = self.mean.get(int(s), self.pooled_mean)
            std = self.std.get(int(s), self.pooled_std)
            out[rows] = (features[rows] - mean) / std
        return out


def split_features(data, split) -> dict[str, np.ndarray]:
    """Binned features of each part of a split, z-scored per subject with training statistics.

    The one path from trials to features of the classical references (the LDA and
    logistic classifiers, the ridge map of Task 2B): :func:`trial_features` of each
    part, then a :class:`SubjectStandardizer` fitted on ``split.train`` alone.

    Parameters
    ----------
    data : eegkit.data.EEGData
    split : eegkit.data.splits.Split

    Returns
    -------
    features : dict of {"train", "val", "test"} -> ndarray, shape (n_trials, n_features)
        In the order of the split's rows.
    """
    subject_id = data.trials["subject_id"].to_numpy()
    parts = {part: np.asarray(getattr(split, part)) for part in ("train", "val", "test")}
    raw = {part: trial_features(data, rows) for part, rows in parts.items()}
    scaler = SubjectStandardizer.fit(raw["train"], subject_id[parts["train"]])
    return {part: scaler.transform(raw[part], subject_id[rows]) for part, rows in parts.items()}


def make_classical(name: str, C: float = 0.01, seed: int = 0):
    """A scikit-learn classifier by name: ``"lda"`` (shrinkage LDA) or ``"logistic"``."""
    check_option("name", name, CLASSICAL_MODELS)
    if name == "lda":
        return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    return LogisticRegression(C=C, max_iter=500, random_state=seed)


def n_parameters(estimator) -> int:
    """Weights and biases of a fitted linear classifier."""
    return int(estimator.coef_.size + estimator.intercept_.size)
