"""The Bayes ceiling of the synthetic twin: an ideal observer that knows the generative model.

On a twin, :class:`eegkit.twin.TwinModel` holds the ground truth, so the best any
decoder could do on a split's test trials can be computed: :func:`bayes_ceiling`
returns the ideal observer's accuracy (and retrieval scores), and
:func:`with_ceiling` adds it to a results table with each model's fraction of it.
On real data there is no ceiling, and these functions say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from eegkit._checks import check_option
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
#: Gauss-Hermite nodes over which the observer averages a trial's latency jitter.
_JITTER_NODES = 5


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


def _on_chans(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``M @ X`` for X of shape (..., n_chans, n_times), as one matrix product."""
    return np.moveaxis(np.tensordot(M, X, axes=([1], [-2])), 0, -2)


def _on_times(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``X @ M`` for X of shape (..., n_chans, n_times), as one matrix product."""
    return (X.reshape(-1, X.shape[-1]) @ M).reshape(*X.shape[:-1], M.shape[1])


def _inverse_sqrt(M: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((M + M.T) / 2)
    w = np.maximum(w, w.max() * 1e-10)
    return (V / np.sqrt(w)) @ V.T


def _separable_whitener(draws: list[np.ndarray], alpha_pattern: np.ndarray,
                        alpha_waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse square roots of the noise's spatial and temporal covariances.

    The Kronecker (separable) approximation ``S ⊗ T`` of the noise covariance: S
    (n_chans, n_chans) and T (n_times, n_times) averaged over noise-only draws, given
    in batches of shape (b, n_chans, n_times), plus alpha at level 1
    (``alpha_pattern ⊗ alpha_waves[n]``, independent of the rest).
    """
    _, n_chans, n_times = draws[0].shape
    S, T = np.zeros((n_chans, n_chans)), np.zeros((n_times, n_times))
    for N in draws:
        N = N.astype(np.float64)
        S += np.tensordot(N, N, axes=([0, 2], [0, 2]))
        T += np.tensordot(N, N, axes=([0, 1], [0, 1]))
    S += np.outer(alpha_pattern, alpha_pattern) * (alpha_waves**2).sum()
    T += (alpha_pattern**2).sum() * alpha_waves.T @ alpha_waves
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
    if (twin.n_chans, twin.n_times) != (len(model.subject_mixing[0]), len(model.times)):
        raise ValueError(f"the twin's trials are {twin.n_chans} x {twin.n_times} but "
                         f"its generator makes {len(model.subject_mixing[0])} x "
                         f"{len(model.times)}; load it with the default channel_names")
    return model


def _part_rows(twin: EEGData, split: Split, part: str) -> np.ndarray:
    parts = split.parts()
    check_option("part", part, parts)
    rows = np.asarray(parts[part], dtype=np.int64)
    if len(rows) == 0 or rows.max() >= len(twin.trials):
        raise ValueError(f"the split's {part} part has {len(rows)} rows, some beyond "
                         f"the {len(twin.trials)} trials; make the split from "
                         "twin.trials")
    return rows


def subject_session(model: TwinModel,
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


class IdealObserver:
    """Log-likelihood of every image of the pool for trials of some subjects.

    Holds, per subject, the filters onto the prewhitened signal subspace and the
    noise's mean and covariance there; per (subject, session), on first use, the
    images' means and the Cholesky factor of the session's covariance. See
    :func:`bayes_ceiling` for the method.
    """

    def __init__(self, model: TwinModel, subjects: np.ndarray, n_noise_trials: int,
                 noise_seed: int, batch_size: int):
        start = time.perf_counter()
        self.model = model
        preset = model.preset
        self.image_category = np.array([CATEGORIES.index(s.category) for s in model.specs])
        nodes, weights = np.polynomial.hermite_e.hermegauss(_JITTER_NODES)
        self.jitter = nodes * preset.trial_jitter_seconds
        self.jitter_weights = weights / weights.sum()
        n_sources, n_times = model.source_patterns.shape[1], len(model.times)
        # The subject's jitter-averaged generator responses of every session:
        # (n_sessions, n_jitters, n_generators, n_sources, n_times).
        self.waveforms, bases = {}, {}
        for s in subjects:
            G = np.stack([model.generator_waveforms(s, e, self.jitter)
                          for e in range(preset.n_sessions)])
            self.waveforms[int(s)] = G
            mean = np.einsum("j,ejgst->egst", self.jitter_weights, G)
            flat = mean.reshape(-1, n_sources * n_times)
            _, sv, Vt = np.linalg.svd(flat, full_matrices=False)
            bases[int(s)] = Vt[sv > sv[0] * 1e-9].reshape(-1, n_sources, n_times)
        n_basis = max(len(b) for b in bases.values())
        if n_noise_trials < 4 * n_basis:
            raise ValueError(f"n_noise_trials={n_noise_trials} is too few to estimate "
                             f"the noise covariance in a {n_basis}-dim subspace; "
                             f"use at least {4 * n_basis} (default 2000)")
        rng = np.random.default_rng([model.seed, _CEILING_STREAM, noise_seed])
        rest, waves = [], []
        for first in range(0, n_noise_trials, batch_size):
            R, w = model.noise_parts(rng, min(batch_size, n_noise_trials - first))
            rest.append(R.astype(np.float32))
            waves.append(w)
        waves = np.concatenate(waves)
        whiten_chans, whiten_times = _separable_whitener(rest, model.alpha_pattern, waves)
        filters = [_signal_filters(model.subject_mixing[s], bases[int(s)], whiten_chans,
                                   whiten_times).astype(np.float32) for s in subjects]
        bounds = np.cumsum([0] + [len(f) for f in filters])
        stacked = np.concatenate([f.reshape(len(f), -1) for f in filters])
        Z = np.concatenate([R.reshape(len(R), -1) @ stacked.T for R in rest])
        del stacked, rest
        self.subjects, self._sessions = {}, {}
        for k, s in enumerate(subjects):
            F = filters[k]
            Z_rest = Z[:, bounds[k]:bounds[k + 1]].astype(np.float64)
            on_alpha = np.einsum("c,kct->kt", model.alpha_pattern, F.astype(np.float64))
            Z_alpha = waves @ on_alpha.T
            # Filters on the source space of the undone trial: z = <H, S> / noise level.
            H = _on_chans(model.subject_mixing[s].T, F.astype(np.float64))
            self.subjects[int(s)] = {
                "F": F.reshape(len(F), -1), "H": H.reshape(len(H), -1),
                "rest_mean": Z_rest.mean(axis=0), "rest_cov": np.cov(Z_rest, rowvar=False),
                "alpha_mean": Z_alpha.mean(axis=0),
                "alpha_cov": np.cov(Z_alpha, rowvar=False),
            }
        self.n_dims = int(np.diff(bounds).max())
        self.n_noise_trials = n_noise_trials
        self.seconds = time.perf_counter() - start

    def _session(self, subject: int, session: int):
        """Whitened image means and covariance factor of one (subject, session)."""
        key = (subject, session)
        if key in self._sessions:
            return self._sessions[key]
        model, sub = self.model, self.subjects[subject]
        level = model.noise_level[subject]
        G = self.waveforms[subject][session]  # (n_jitters, n_generators, n_sources, n_times)
        z_gen = G.reshape(*G.shape[:2], -1) @ sub["H"].T / level
        means = np.einsum("ig,jgk->jik", model.image_generators, z_gen)
        mean = np.einsum("j,jik->ik", self.jitter_weights, means)
        # Latency jitter and amplitude spread, as a Gaussian: their covariance averaged
        # over the images, E[a^2] sum_j w_j m_ij m_ij^T - mean_i mean_i^T.
        a2 = np.exp(model.preset.trial_amplitude_sd ** 2)
        second = np.einsum("j,jik,jil->kl", self.jitter_weights, means, means)
        trial_cov = (a2 * second - mean.T @ mean) / len(mean)
        # Bad channels: white noise added after the cap, z = <A^{-T} F, b>.
        A = model.session_matrix(subject, session)
        undo = np.linalg.inv(A)
        bad = np.flatnonzero(model.bad_channels[subject, session])
        F = sub["F"].reshape(len(sub["F"]), len(A), -1).astype(np.float64)
        on_bad = np.einsum("pb,kpt->kbt", undo[:, bad], F).reshape(len(F), -1)
        bad_var = (model.preset.session_bad_noise * model.noise_uv * level) ** 2
        alpha = model.alpha_level[subject, session]
        cov = (sub["rest_cov"] + alpha**2 * sub["alpha_cov"] + trial_cov
               + bad_var * on_bad @ on_bad.T)
        L = np.linalg.cholesky(cov)
        centre = mean + sub["rest_mean"] + alpha * sub["alpha_mean"]
        white = solve_triangular(L, centre.T, lower=True).T
        self._sessions[key] = (undo, L, white)
        return self._sessions[key]

    def image_log_posterior(self, X: np.ndarray, subject: int, session: int) -> np.ndarray:
        """``log p(image | x)``, shape (n_trials, n_pool), with equal priors over the
        categories and over each category's images (as the generator draws them)."""
        category = self.image_category
        n_per_category = np.bincount(category, minlength=len(CATEGORIES))
        log_post = self.log_likelihood(X, subject, session)
        log_post -= np.log(n_per_category[category])[None, :]
        return log_post - logsumexp(log_post, axis=1, keepdims=True)

    def category_log_posterior(self, image_log_post: np.ndarray) -> np.ndarray:
        """``log p(category | x)``, shape (n_trials, n_categories), from the images'."""
        return np.stack([logsumexp(image_log_post[:, self.image_category == c], axis=1)
                         for c in range(len(CATEGORIES))], axis=1)

    def log_likelihood(self, X: np.ndarray, subject: int, session: int) -> np.ndarray:
        """``log p(x | image)`` up to a constant, shape (n_trials, n_pool).

        X : ndarray, shape (n_trials, n_chans, n_times), µV, of one subject and session.
        """
        undo, L, means = self._session(subject, session)
        offset = self.model.session_offset[subject, session][None, :, None]
        X = _on_chans(undo, X - offset)
        F = self.subjects[subject]["F"]
        z = solve_triangular(L, (X.reshape(len(X), -1).astype(np.float32) @ F.T).T
                             .astype(np.float64), lower=True).T
        d2 = ((z**2).sum(axis=1)[:, None] - 2 * z @ means.T
              + (means**2).sum(axis=1)[None, :])
        return -0.5 * d2


def observe(twin: EEGData, split: Split, part: str, observer: IdealObserver,
             ks: tuple[int, ...], n_boot: int, n_perm: int, seed: int,
             setup_seconds: float) -> BayesCeiling:
    """The ideal observer's posteriors and scores on one part of a split."""
    start = time.perf_counter()
    model = observer.model
    rows = _part_rows(twin, split, part)
    trials = twin.trials.iloc[rows]
    subject, session = subject_session(model, trials)
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
        image_log_post[where] = observer.image_log_posterior(X, s, e)
    log_posterior = observer.category_log_posterior(image_log_post)
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

    The ideal observer knows every parameter of :class:`TwinModel` (the subject's
    forward model, latencies, amplitudes and templates, the session's cap,
    impedances, bad channels, alpha level and templates) but not what is drawn per
    trial (noise, latency jitter, amplitude, drift, artefacts). Its likelihood is
    Gaussian, ``x | i ~ N(mean_i + m, Σ[s, e])``, computed in a small subspace (the
    full 122 x 500 covariance cannot be estimated or inverted):

    1. The session's linear map is undone, ``x -> A[s, e]^{-1} (x - offset)``
       (noise level, impedances, cap shift); after it the background noise is the
       same for every subject and session up to the alpha level.
    2. Separable prewhitening: ``Σ ≈ S ⊗ T`` (spatial x temporal), S and T averaged
       over ``n_noise_trials`` noise-only draws of :meth:`TwinModel.noise_parts`
       (seeded independently of the data; alpha at level 1).
    3. Projection onto each subject's signal subspace: the span of the whitened
       forward model of its jitter-averaged responses (the common response, the
       category templates of each of its sessions, the attribute responses:
       1 + 20 x 5 + 22 = 123 dimensions).
    4. In that subspace, per (subject, session): the image means are the
       jitter-averaged responses (5-point Gauss-Hermite average over the trial's
       latency jitter); the covariance is the background's (estimated from the
       draws, alpha scaled to the session's level), plus the bad channels' white
       noise seen through ``A^{-1}`` (exact), plus the spread that latency jitter and
       amplitude variability give the response, averaged over the images.

    What it approximates, each of which can only lower the ceiling: latency jitter
    and amplitude variability are folded into one Gaussian (the exact likelihood
    integrates over each trial's latency and amplitude), and the part of a jittered
    response outside the subspace of jitter-averaged responses is not used; the
    noise is treated as Gaussian (alpha bursts, blinks, muscle and movement
    artefacts are not); the drift's correlation across consecutive trials is not
    used (each trial is judged alone, with the drift's marginal spread); the
    non-separable parts of the noise outside the subspace are ignored; and the
    covariances come from finitely many draws. Tested: on a small twin no model of
    the report (FC, EEGNet, ShallowConvNet, multi-head, shrinkage LDA) scores above
    it on any protocol (tests/test_ceiling_vs_models.py), and it is about
    calibrated (mean posterior of its choice within 0.1 of its accuracy).

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
        held in memory (float32; 490 MB at 122 x 500); at least 4 per dimension of
        the subspace (123).
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
    subject, _ = subject_session(model, twin.trials.iloc[rows])
    observer = IdealObserver(model, np.unique(subject), n_noise_trials, noise_seed,
                              batch_size)
    return observe(twin, split, part, observer, tuple(ks), n_boot, n_perm, seed,
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
        subject, _ = subject_session(model, data.trials)
        observer = IdealObserver(model, np.unique(subject), n_noise_trials,
                                  noise_seed=0, batch_size=250)
        ceilings = [observe(data, make_split(data.trials, protocol, seed=seed), "test",
                             observer, metrics.RETRIEVAL_KS, n_boot, n_perm, seed,
                             observer.seconds)
                    for protocol in pd.unique(results["protocol"])]
    table = pd.concat([results, *(c.results_rows() for c in ceilings)],
                      ignore_index=True)
    ceiling = table["protocol"].map({c.protocol: c.accuracy for c in ceilings})
    table["fraction_of_ceiling"] = (table["value"] / ceiling).where(
        table["metric"] == "accuracy")
    return table

