"""The Bayes ceiling of the synthetic twin: an ideal observer that knows the generative model.

On a twin, :class:`eegkit.twin.TwinModel` holds the ground truth, so the best any
decoder could do on a split's test trials can be computed: :func:`bayes_ceiling`
returns the ideal observer's accuracy (and retrieval scores), and
:func:`with_ceiling` adds it to a results table with each model's fraction of it.
On real data there is no ceiling, and these functions say so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from eegkit import metrics
from eegkit.data.channels import CATEGORIES
from eegkit.data.loading import TWIN_MANIFEST, EEGData
from eegkit.data.splits import Split, make_split
from eegkit.twin.generator import TwinModel, image_name, load_twin_model

#: Model name of the ideal observer's rows in results tables.
IDEAL_OBSERVER = "Ideal observer (Bayes ceiling)"
#: Second entropy word of the ceiling's noise draws. The generator uses
#: ``[seed, 0]`` (ground truth), ``[seed, 1, ...]`` (images) and ``[seed, 2, ...]``
#: (trial noise), so these draws are independent of every trial of the twin.
_CEILING_STREAM = 3


@dataclass
class BayesCeiling:
    """The ideal observer's decisions and scores on one part of a split.

    Attributes
    ----------
    protocol : str
        The split's protocol.
    part : {"train", "val", "test"}
    rows : ndarray of int, shape (n_trials,)
        Row positions in ``EEGData.trials``.
    y : ndarray of int, shape (n_trials,)
        True category (index in :data:`eegkit.data.channels.CATEGORIES`).
    log_posterior : ndarray, shape (n_trials, n_categories)
        Log posterior probability of each category (rows sum to 1 after ``exp``).
    scores : DataFrame
        :func:`eegkit.metrics.score_table` of ``log_posterior``: accuracy, balanced
        and top-5 accuracy with chance, 95 % bootstrap CI and p-value.
    retrieval : DataFrame or None
        The ideal observer's caption retrieval over the bank of the part's unique
        captions: ``metric``, ``ranking``, ``value``, ``ci_low``, ``ci_high``,
        ``chance``, ``n_queries`` (see :func:`bayes_ceiling`); None for a twin
        written without captions.
    n_dims : int
        Dimension of the largest per-subject signal subspace.
    n_noise_trials : int
        Noise-only draws behind the prewhitener and the noise covariance.
    seconds : float
        Wall time of the computation, noise draws included.
    """

    protocol: str
    part: str
    rows: np.ndarray
    y: np.ndarray
    log_posterior: np.ndarray
    scores: pd.DataFrame
    retrieval: pd.DataFrame | None
    n_dims: int
    n_noise_trials: int
    seconds: float

    @property
    def n_trials(self) -> int:
        return len(self.y)

    @property
    def y_hat(self) -> np.ndarray:
        """The ideal observer's decision: the most probable category of each trial."""
        return self.log_posterior.argmax(axis=1)

    def _score(self, column: str) -> float:
        return float(self.scores.set_index("metric").loc["accuracy", column])

    @property
    def accuracy(self) -> float:
        return self._score("value")

    @property
    def ci(self) -> tuple[float, float]:
        """95 % bootstrap interval of :attr:`accuracy` (test trials resampled)."""
        return self._score("ci_low"), self._score("ci_high")

    def results_rows(self) -> pd.DataFrame:
        """:attr:`scores` with ``model`` and ``protocol`` columns (a results table)."""
        table = self.scores.copy()
        table.insert(0, "protocol", self.protocol)
        table.insert(0, "model", IDEAL_OBSERVER)
        return table

    def summary(self) -> str:
        """One line: accuracy with its interval, trials, split and cost."""
        low, high = self.ci
        return (f"Bayes ceiling ({self.protocol} split, {self.part}): accuracy "
                f"{self.accuracy:.3f} (95 % CI {low:.3f}-{high:.3f}) on "
                f"{self.n_trials} trials; {self.n_dims}-dim signal subspace, "
                f"{self.n_noise_trials} noise draws, {self.seconds:.1f} s")


def _drift_matrix(model: TwinModel, subject: int, session: int) -> np.ndarray:
    """The session drift's linear part ``A``, shape (n_chans, n_chans).

    :meth:`TwinModel.evoked` is ``A @ (mixing @ source) + offset`` and
    :meth:`TwinModel.noise` is ``A @ noise0`` with ``noise0`` the same for every
    subject and session; ``A = gain * ((1 - shift) I + shift P)``, P picking each
    channel's nearest neighbour. With shift <= 0.3, A is invertible.
    """
    n_chans = len(model.neighbour)
    shift = model.session_shift[subject, session]
    A = (1 - shift) * np.eye(n_chans)
    A[np.arange(n_chans), model.neighbour] += shift
    return model.session_gain[subject, session] * A


def _on_chans(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``M @ X`` for X of shape (..., n_chans, n_times), as one matrix product."""
    return np.moveaxis(np.tensordot(M, X, axes=([1], [-2])), 0, -2)


def _on_times(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``X @ M`` for X of shape (..., n_chans, n_times), as one matrix product."""
    return (X.reshape(-1, X.shape[-1]) @ M).reshape(*X.shape[:-1], M.shape[1])


def _undrifted_noise(model: TwinModel, rng: np.random.Generator, n_trials: int,
                     batch_size: int) -> Iterator[np.ndarray]:
    """Noise-only trials, drift undone, in batches of shape (b, n_chans, n_times)."""
    undo = np.linalg.inv(_drift_matrix(model, 0, 0))
    for start in range(0, n_trials, batch_size):
        yield _on_chans(undo, model.noise(rng, min(batch_size, n_trials - start), 0, 0))


def _inverse_sqrt(M: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((M + M.T) / 2)
    w = np.maximum(w, w.max() * 1e-10)
    return (V / np.sqrt(w)) @ V.T


def _separable_whitener(draws: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse square roots of the noise's spatial and temporal covariances.

    The Kronecker (separable) approximation ``S ⊗ T`` of the noise covariance: S
    (n_chans, n_chans) and T (n_times, n_times) averaged over noise-only draws, given
    in batches of shape (b, n_chans, n_times).
    """
    _, n_chans, n_times = draws[0].shape
    S, T = np.zeros((n_chans, n_chans)), np.zeros((n_times, n_times))
    for N in draws:
        N = N.astype(np.float64)
        S += np.tensordot(N, N, axes=([0, 2], [0, 2]))
        T += np.tensordot(N, N, axes=([0, 1], [0, 1]))
    n_trials = sum(len(N) for N in draws)
    S, T = S / (n_trials * n_times), T / (n_trials * n_chans)
    return _inverse_sqrt(S), _inverse_sqrt(T)


def _signal_filters(mixing: np.ndarray, basis: np.ndarray, whiten_chans: np.ndarray,
                    whiten_times: np.ndarray) -> np.ndarray:
    """Filters onto the span of a subject's noise-free trials (orthonormal, whitened).

    Parameters
    ----------
    mixing : ndarray, shape (n_chans, n_sources)
    basis : ndarray, shape (n_basis, n_sources, n_times)
        Spans the source responses of every image.
    whiten_chans, whiten_times : ndarray
        From :func:`_separable_whitener`.

    Returns
    -------
    filters : ndarray, shape (n_dims, n_chans, n_times)
        ``z_k = sum(filters[k] * x)`` for an undrifted trial x.
    """
    n_chans, n_times = whiten_chans.shape[0], whiten_times.shape[0]
    whitened = _on_times(_on_chans(whiten_chans @ mixing, basis), whiten_times)
    U, sv, _ = np.linalg.svd(whitened.reshape(len(basis), -1).T, full_matrices=False)
    Q = U[:, sv > sv[0] * 1e-9].T.reshape(-1, n_chans, n_times)
    return _on_times(_on_chans(whiten_chans, Q), whiten_times)


def _spec_of_caption_row(model: TwinModel, captions: pd.DataFrame, every_image: bool = True) -> np.ndarray:
    """Index into ``model.specs`` of each row of captions.txt (the trials' image_id).

    ``every_image=False`` accepts an image table that lists only the images shown
    (a twin written without captions, whose table comes from the trials).
    """
    index = {image_name(model, i): i for i in range(len(model.specs))}
    spec = captions["image_name"].map(index)
    if spec.isna().any() or (every_image and len(captions) != len(model.specs)):
        raise ValueError(
            f"captions.txt lists {len(captions)} images ({int(spec.isna().sum())} "
            f"unknown to the generator) but the twin's model has {len(model.specs)}; "
            "the twin was edited or written by another generator version: write it "
            "again with make_twin"
        )
    spec = spec.to_numpy(dtype=np.int64)
    truth = np.array([CATEGORIES.index(model.specs[i].category) for i in spec])
    if not np.array_equal(truth, captions["category_id"].to_numpy()):
        raise ValueError("captions.txt files images under other categories than the "
                         "twin's generator; write the twin again with make_twin")
    return spec


def _retrieval_ceiling(trials: pd.DataFrame, caption_of_image: np.ndarray,
                       image_log_post: np.ndarray, log_posterior: np.ndarray,
                       ks: tuple[int, ...], n_boot: int, seed: int) -> pd.DataFrame:
    """Recall@k (instance and class-aware) and MAP of the ideal observer's rankings."""
    # The bank of eegkit.retrieval.clip.caption_bank: unique captions, sorted by id.
    bank = trials[["caption_id", "category", "category_id"]]
    bank = bank.drop_duplicates("caption_id")
    bank = bank.sort_values("caption_id").reset_index(drop=True)
    bank_ids = bank["caption_id"].to_numpy()
    # Instance: captions by posterior, P(caption | x) = sum over its images.
    sim = np.stack([logsumexp(image_log_post[:, caption_of_image == c], axis=1)
                    for c in bank_ids], axis=1)
    # Class-aware: the best caption of every category first, categories by posterior.
    bank_cat = bank["category_id"].to_numpy()
    cat_rank = np.argsort(np.argsort(-log_posterior, axis=1), axis=1)[:, bank_cat]
    best = np.zeros_like(sim, dtype=bool)
    for c in np.unique(bank_cat):
        cols = np.flatnonzero(bank_cat == c)
        best[np.arange(len(sim)), cols[sim[:, cols].argmax(axis=1)]] = True
    sim_class = -cat_rank - np.where(best, 0, 2 * log_posterior.shape[1])
    args = (trials["caption_id"], trials["category"], bank_ids, bank["category"])
    instance = metrics.retrieval_scores(sim, *args, ks=ks)
    classwise = metrics.retrieval_scores(sim_class.astype(float), *args, ks=ks)
    chance = metrics.retrieval_chance(*args, ks=ks)
    by_caption, by_category = "captions by posterior", "best caption of each category"
    wanted = [
        *((f"Recall@{k} (instance)", f"recall@{k}", instance, by_caption) for k in ks),
        *((f"Recall@{k} (class-aware)", f"class_recall@{k}", classwise, by_category)
          for k in ks),
        ("MAP (instance)", "ap", instance, by_caption),
    ]
    rows = []
    for metric, column, per_query, ranking in wanted:
        values = per_query[column].to_numpy(dtype=float)
        low, high = metrics.bootstrap_ci(lambda i: values[i].mean(), len(values),
                                         n_boot, seed=seed)
        rows.append({"metric": metric, "ranking": ranking, "value": values.mean(),
                     "ci_low": low, "ci_high": high, "chance": chance[column],
                     "n_queries": len(values)})
    return pd.DataFrame(rows)


def _twin_model(twin: EEGData) -> TwinModel:
    """The generative model of a twin's data; raises for real data."""
    if twin.twin is None:
        raise ValueError(
            f"{twin.root} is not a synthetic twin (its data has no {TWIN_MANIFEST}): "
            "the Bayes ceiling exists only for synthetic data, whose generative model "
            "is known; on real EEG no ceiling can be computed"
        )
    model = load_twin_model(twin.root)
    if (twin.n_chans, twin.n_times) != (len(model.neighbour), len(model.times)):
        raise ValueError(f"the twin's trials are {twin.n_chans} x {twin.n_times} but "
                         f"its generator makes {len(model.neighbour)} x "
                         f"{len(model.times)}; load it with the default channel_names")
    return model


def _part_rows(twin: EEGData, split: Split, part: str) -> np.ndarray:
    parts = split.parts()
    if part not in parts:
        raise ValueError(f"part must be one of {list(parts)}, not {part!r}")
    rows = np.asarray(parts[part], dtype=np.int64)
    if len(rows) == 0 or rows.max() >= len(twin.trials):
        raise ValueError(f"the split's {part} part has {len(rows)} rows, some beyond "
                         f"the {len(twin.trials)} trials; make the split from "
                         "twin.trials")
    return rows


def _subject_session(model: TwinModel,
                     trials: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The generator's subject and session index (0-based) of each trial."""
    names = {name: i for i, name in enumerate(model.preset.subjects)}
    subject = trials["subject"].map(names)
    session = trials["session"].str.extract(r"(\d+)$", expand=False).astype(float) - 1
    n_sessions = model.preset.n_sessions
    if subject.isna().any() or not session.between(0, n_sessions - 1).all():
        raise ValueError(f"trials of subjects or sessions the twin's generator did not "
                         f"make ({model.preset.subjects}, {n_sessions} sessions); load "
                         "the twin with load_dataset and split its own trials")
    return subject.to_numpy(dtype=np.int64), session.to_numpy(dtype=np.int64)


class _IdealObserver:
    """Log-likelihood of every image of the pool for trials of some subjects.

    Holds, per subject, the filters onto the prewhitened signal subspace, the
    Cholesky factor of the noise covariance there and the images' whitened means
    (noise mean included); see :func:`bayes_ceiling` for the method.
    """

    def __init__(self, model: TwinModel, subjects: np.ndarray, n_noise_trials: int,
                 noise_seed: int, batch_size: int):
        start = time.perf_counter()
        self.model = model
        n_pool = len(model.specs)
        # Every image's source response lies in the span of ``basis``.
        # (n_pool, n_sources, n_times)
        responses = model.source_response(np.arange(n_pool))
        flat = responses.reshape(n_pool, -1)
        _, sv, Vt = np.linalg.svd(flat, full_matrices=False)
        basis = Vt[sv > sv[0] * 1e-9].reshape(-1, *responses.shape[1:])
        if n_noise_trials < 4 * len(basis):
            raise ValueError(f"n_noise_trials={n_noise_trials} is too few to estimate "
                             f"the noise covariance in a {len(basis)}-dim subspace; "
                             f"use at least {4 * len(basis)} (default 2000)")
        rng = np.random.default_rng([model.seed, _CEILING_STREAM, noise_seed])
        draws = [N.astype(np.float32)
                 for N in _undrifted_noise(model, rng, n_noise_trials, batch_size)]
        whiten_chans, whiten_times = _separable_whitener(draws)
        # Filters of every subject, flattened: (n_dims, n_chans * n_times) each.
        filters = [_signal_filters(model.subject_mixing[s], basis, whiten_chans,
                                   whiten_times) for s in subjects]
        bounds = np.cumsum([0] + [len(f) for f in filters])
        stacked = np.concatenate([f.reshape(len(f), -1) for f in filters])
        stacked = stacked.astype(np.float32)
        Z = np.concatenate([N.reshape(len(N), -1) @ stacked.T for N in draws])
        del stacked, draws
        self.subjects = {}
        for k, s in enumerate(subjects):
            F = filters[k].reshape(len(filters[k]), -1)
            noise = Z[:, bounds[k]:bounds[k + 1]]
            L = np.linalg.cholesky(np.cov(noise, rowvar=False))
            # Means in the subspace: z_i = <F, mixing @ S_i> = <mixing^T F, S_i>.
            H = _on_chans(model.subject_mixing[s].T, filters[k]).reshape(len(F), -1)
            means = flat @ H.T + noise.mean(axis=0)
            self.subjects[int(s)] = (F, L, solve_triangular(L, means.T, lower=True).T)
        self.n_dims = int(np.diff(bounds).max())
        self.n_noise_trials = n_noise_trials
        self.seconds = time.perf_counter() - start

    def log_likelihood(self, X: np.ndarray, subject: int, session: int) -> np.ndarray:
        """``log p(x | image)`` up to a constant, shape (n_trials, n_pool).

        X : ndarray, shape (n_trials, n_chans, n_times), µV, of one subject and session.
        """
        F, L, means = self.subjects[subject]
        offset = self.model.session_offset[subject, session][None, :, None]
        undo = np.linalg.inv(_drift_matrix(self.model, subject, session))
        X = _on_chans(undo, X - offset)
        z = solve_triangular(L, (X.reshape(len(X), -1) @ F.T).T, lower=True).T
        d2 = ((z**2).sum(axis=1)[:, None] - 2 * z @ means.T
              + (means**2).sum(axis=1)[None, :])
        return -0.5 * d2


def _observe(twin: EEGData, split: Split, part: str, observer: _IdealObserver,
             ks: tuple[int, ...], n_boot: int, n_perm: int, seed: int,
             setup_seconds: float) -> BayesCeiling:
    """The ideal observer's posteriors and scores on one part of a split."""
    start = time.perf_counter()
    model = observer.model
    rows = _part_rows(twin, split, part)
    trials = twin.trials.iloc[rows]
    subject, session = _subject_session(model, trials)
    spec = _spec_of_caption_row(model, twin.captions, every_image=twin.has_captions)
    y = trials["category_id"].to_numpy()
    n_pool = len(model.specs)
    image_category = np.array([CATEGORIES.index(s.category) for s in model.specs])
    if not np.array_equal(image_category[spec[trials["image_id"].to_numpy()]], y):
        raise ValueError("the trial table's categories disagree with the twin's "
                         "images; write the twin again with make_twin")
    caption_of_image = np.empty(n_pool, dtype=np.int64)
    caption_of_image[spec] = twin.captions["caption_id"].to_numpy()

    image_log_post = np.empty((len(rows), n_pool))
    for s, e in sorted(set(zip(subject.tolist(), session.tolist()))):
        where = np.flatnonzero((subject == s) & (session == e))
        X = twin.get_trials(rows[where]).astype(np.float64)
        image_log_post[where] = observer.log_likelihood(X, s, e)
    # Equal priors over the categories and over each category's images.
    n_per_category = np.bincount(image_category, minlength=len(CATEGORIES))
    image_log_post -= np.log(n_per_category[image_category])[None, :]
    image_log_post -= logsumexp(image_log_post, axis=1, keepdims=True)
    log_posterior = np.stack([logsumexp(image_log_post[:, image_category == c], axis=1)
                              for c in range(len(CATEGORIES))], axis=1)
    scores = metrics.score_table(y, log_posterior, n_boot=n_boot, n_perm=n_perm,
                                 seed=seed)
    retrieval = None  # without captions there is nothing to retrieve
    if twin.has_captions:
        retrieval = _retrieval_ceiling(trials, caption_of_image, image_log_post,
                                       log_posterior, ks, n_boot, seed)
    return BayesCeiling(protocol=split.protocol, part=part, rows=rows, y=y,
                        log_posterior=log_posterior, scores=scores, retrieval=retrieval,
                        n_dims=observer.n_dims, n_noise_trials=observer.n_noise_trials,
                        seconds=setup_seconds + time.perf_counter() - start)


def bayes_ceiling(
    twin: EEGData,
    split: Split,
    *,
    part: str = "test",
    n_noise_trials: int = 2000,
    noise_seed: int = 0,
    ks: tuple[int, ...] = metrics.RETRIEVAL_KS,
    n_boot: int = 1000,
    n_perm: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
) -> BayesCeiling:
    """The accuracy of the ideal observer on a split's test trials: the Bayes ceiling.

    The ideal observer knows the twin's generative model (:func:`load_twin_model`):
    the category templates, each image's attribute response, the subject mixing,
    the session drift and the noise model. For each trial read from the data (µV,
    as stored) it computes the likelihood of every image of the pool under the
    trial's subject and session, and the posterior of category c,
    ``log p(c | x) = logsumexp_{i in c} log p(x | i) - log n_images(c) + const``
    (equal priors over the categories and over each category's images, as the
    generator draws them), then decides by the most probable category. No decoder,
    however trained, can exceed its expected accuracy on these trials by more than
    chance fluctuation.

    The likelihood is Gaussian, ``x | i ~ N(mean_i + m, Σ)``, and is computed in a
    small subspace (the full 122 x 500 covariance cannot be estimated or inverted):

    1. The session drift is undone, ``x -> A^{-1} (x - offset)``; after it the means
       depend only on the subject, and the noise is the same for every subject and
       session.
    2. Separable prewhitening: ``Σ ≈ S ⊗ T`` (spatial x temporal), S and T averaged
       over ``n_noise_trials`` noise-only draws of :meth:`TwinModel.noise` (seeded
       independently of the data). This handles the bulk of the noise's
       correlations across channels and time (1/f, shared noise sources).
    3. Projection onto each subject's signal subspace: every image's mean lies in the
       span of the whitened mixing of the source responses (common response,
       category templates, attribute templates: 37 dimensions). Only the means
       differ between images, so if the prewhitened noise were white this
       projection would lose nothing and the decision would be the exact Bayes
       decision for the Gaussian model.
    4. In that subspace, the noise mean ``m`` (blinks are positive bumps) and the
       full covariance are estimated from the same draws.

    Approximations, all of which can only lower the ceiling: the noise is treated as
    Gaussian (alpha bursts and blinks are not); what the non-separable parts of the
    noise (occipital alpha, frontal blinks, line residue) correlate outside the
    subspace is ignored (on the tiny twin, adding the 200 leading principal
    components of the prewhitened noise to the subspace changed the accuracy by
    less than a point); and the covariances come from finitely many draws (tiny
    twin, all 1,300 trials: 0.675 with 2,000 draws, 0.685 with 4,000; default
    twin's session split: 0.750 and 0.753). The observer is about calibrated: the
    mean posterior of its choice is 0.74 for an accuracy of 0.75 on the default
    twin's session split (0.67 for 0.61 on the tiny twin's 260 test trials).

    Retrieval over the bank of the part's unique captions (as the notebooks rank
    it): ``Recall@k (instance)`` and ``MAP (instance)`` rank the captions by their
    posterior (sum over the pool images with that caption), the ranking that
    maximises the expected instance Recall@k for every k. ``Recall@k
    (class-aware)`` ranks first the most probable caption of each category, the
    categories in order of posterior: any caption of the category counts, so
    this ranking maximises the expected class-aware Recall@k, which is then the
    share of trials whose category is among the k most probable (top-k accuracy).

    Parameters
    ----------
    twin : EEGData
        A synthetic twin (``twin.twin`` is its manifest).
    split : Split
        From :func:`eegkit.data.splits.make_split` on ``twin.trials``.
    part : {"test", "val", "train"}, default="test"
    n_noise_trials : int, default=2000
        Noise-only draws behind the prewhitener and the covariance in the subspace,
        held in memory (float32; 490 MB at 122 x 500). The time is mostly theirs:
        on the default twin's session split, 25 s on 2 free cores, about 65 s
        when the cores are shared with other jobs.
    noise_seed : int, default=0
        Seed of the noise draws (with the twin's seed).
    ks : tuple of int, default=(1, 3, 5)
        Cut-offs of Recall@k.
    n_boot, n_perm : int, default=1000
        Bootstrap resamples and label permutations of the scores.
    seed : int, default=0
        Seed of the bootstrap and the permutations.
    batch_size : int, default=250
        Noise draws generated at once (memory: batch_size x n_chans x n_times floats).

    Returns
    -------
    ceiling : BayesCeiling

    Raises
    ------
    ValueError
        If the data is not a synthetic twin (the ceiling exists only for synthetic
        data), or the twin's files do not match its generator.
    """
    start = time.perf_counter()
    model = _twin_model(twin)
    rows = _part_rows(twin, split, part)
    subject, _ = _subject_session(model, twin.trials.iloc[rows])
    observer = _IdealObserver(model, np.unique(subject), n_noise_trials, noise_seed,
                              batch_size)
    return _observe(twin, split, part, observer, tuple(ks), n_boot, n_perm, seed,
                    time.perf_counter() - start)


def with_ceiling(results: pd.DataFrame, data: EEGData, *, seed: int = 0,
                 n_noise_trials: int = 2000, n_boot: int = 1000,
                 n_perm: int = 1000) -> pd.DataFrame:
    """A results table with each protocol's Bayes ceiling and each accuracy's share.

    On a twin, :func:`bayes_ceiling` is computed on the test trials of every
    protocol in ``results`` (split as the notebooks split: ``make_split(data.trials,
    protocol, seed=seed)``), with one set of noise draws for all protocols; its
    rows (model :data:`IDEAL_OBSERVER`) are appended, and
    ``fraction_of_ceiling`` is each ``accuracy`` row's value divided by the
    ceiling's accuracy on the same protocol (1 for the ideal observer, NaN for the
    other metrics). On real data there is no ceiling: no row is added and
    ``fraction_of_ceiling`` is NaN throughout.

    Parameters
    ----------
    results : DataFrame
        Rows of ``ClassificationRun.results_rows()``: ``model``, ``protocol``,
        ``metric``, ``value``, ...
    data : EEGData
    seed : int, default=0
        Seed of the within-session split, the bootstrap and the permutations.
    n_noise_trials, n_boot, n_perm : int
        See :func:`bayes_ceiling`.

    Returns
    -------
    table : DataFrame
    """
    missing = [c for c in ("model", "protocol", "metric", "value") if c not in results]
    if missing:
        raise ValueError(f"results lacks columns {missing}; pass the rows of "
                         "ClassificationRun.results_rows()")
    ceilings = []
    if data.twin is not None:
        # One observer (the costly noise draws) for every protocol's test trials.
        model = _twin_model(data)
        subject, _ = _subject_session(model, data.trials)
        observer = _IdealObserver(model, np.unique(subject), n_noise_trials,
                                  noise_seed=0, batch_size=250)
        ceilings = [_observe(data, make_split(data.trials, protocol, seed=seed), "test",
                             observer, metrics.RETRIEVAL_KS, n_boot, n_perm, seed,
                             observer.seconds)
                    for protocol in pd.unique(results["protocol"])]
    table = pd.concat([results, *(c.results_rows() for c in ceilings)],
                      ignore_index=True)
    ceiling = table["protocol"].map({c.protocol: c.accuracy for c in ceilings})
    table["fraction_of_ceiling"] = (table["value"] / ceiling).where(
        table["metric"] == "accuracy")
    return table

