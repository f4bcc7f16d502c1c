"""The twin's generative model: :class:`TwinModel`, the ground truth every trial is
drawn from.

The EEG is a sum of

(a) category-specific evoked responses (P1/N1/P2-like peaks at about 100, 170 and
    250 ms, each with its own scalp topography), on top of a visual response common
    to all categories, and a weaker image-specific response driven by the
    attributes the caption states;
(b) between subjects: each subject's own forward model, peak latencies and
    amplitudes, noise level and share of the category templates (since version 4,
    a minor share: most of a category's response and of a head is common to all);
(c) between sessions of a subject: cap shift, per-channel impedance gains, a few
    bad channels, the alpha level, channel offsets and a day-to-day share of the
    category templates;
(d) within a session: each trial's latency jitter and amplitude, slow baseline
    drift across trials, background noise with a 1/f spectrum, alpha bursts
    (8-12 Hz, occipital), 50 Hz line residue, blinks, and occasional muscle and
    movement artefacts.

:meth:`TwinModel.from_preset` draws it from a :class:`~eegkit.twin.preset.TwinPreset`
and a seed; :meth:`TwinModel.run_trials` draws one run. The ground truth also gives a
Bayes-optimal ceiling: :meth:`TwinModel.evoked` is the noise-free mean of a trial and
:meth:`TwinModel.noise` draws noise-only trials (:mod:`eegkit.ceiling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from eegkit.data.channels import CATEGORIES, DEFAULT_CHANNELS, channel_positions
from eegkit.twin.preset import TwinPreset, get_preset
from eegkit.twin.stimuli import ATTRIBUTES, ImageSpec, sample_specs

FRONTAL_BLINK_CHANNELS = ("Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8")
#: Electrodes over the temporalis and neck muscles, where muscle bursts show.
MUSCLE_CHANNEL_PREFIXES = ("T", "FT", "TP", "TPP", "FTT", "I")
#: Peaks of the evoked response: (latency s, width s, sign): P1, N1, P2.
PEAKS = ((0.100, 0.012, 1.0), (0.170, 0.018, -1.0), (0.250, 0.030, 1.0))


def _gaussian(t: np.ndarray, centre, width) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def _smooth_patterns(rng, positions, n_sources, width_m, centre_bias=None, signed=True):
    """Scalp patterns (n_chans, n_sources): Gaussian blobs on the electrode positions.

    ``signed=False`` keeps every blob positive, so that a source's waveform has the
    same polarity over its whole scalp region (as P1/N1 do over visual cortex).
    """
    n_chans = len(positions)
    if centre_bias is None:
        centres = rng.choice(n_chans, n_sources)
    else:
        p = centre_bias / centre_bias.sum()
        centres = rng.choice(n_chans, n_sources, p=p)
    dist = np.linalg.norm(positions[:, None, :] - positions[None, centres, :], axis=-1)
    patterns = np.exp(-0.5 * (dist / width_m) ** 2)
    signs = rng.choice([-1.0, 1.0], n_sources)
    return patterns * signs if signed else patterns


def _unit_columns(M: np.ndarray) -> np.ndarray:
    return M / np.linalg.norm(M, axis=0, keepdims=True)


def _coloured(rng, shape, pink):
    """Gaussian noise with spectrum ``pink`` along the last axis, unit variance."""
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1) * pink
    x = np.fft.irfft(spectrum, n=shape[-1], axis=-1)
    return x / x.std()


@dataclass
class TwinModel:
    """The ground truth of a twin: everything needed to generate or decode a trial.

    Build it with :meth:`from_preset`; all arrays are derived from ``seed``. A trial
    of subject s, session e showing image i is

    ``x = A[s, e] @ (M[s] @ a * S[s, i](t - d) / noise_level[s] + N) + offset[s, e] + B[s, e]``

    with ``S[s, i]`` the subject's source response to the image (its own latencies,
    amplitudes and partly its own category templates), ``d`` and ``a`` the trial's
    latency jitter and amplitude, ``M[s]`` the subject's forward model, ``A[s, e] =
    noise_level[s] * diag(impedance[s, e]) @ cap[s, e]`` the session's cap
    (impedance gains, shifted electrodes), ``N`` the background noise (1/f sources,
    alpha at the session's level, line residue, drift, blinks, muscle and movement
    artefacts) and ``B[s, e]`` white noise on the session's bad channels.

    Attributes
    ----------
    preset : TwinPreset
    seed : int
    specs : list of ImageSpec
        The image pool; index = image number in file names.
    times : ndarray, shape (n_times,), s
    source_patterns : ndarray, shape (n_chans, n_sources)
        Scalp pattern of each latent source on the template head.
    generator_amplitude : ndarray, shape (n_subjects, n_sessions, n_generators, 3, n_sources)
        Per subject and session, the source amplitudes of each response generator (the common
        visual response, the 20 category templates, one per value of each caption
        attribute) at each of its peaks (an attribute response has one peak).
    generator_latency : ndarray, shape (n_subjects, n_generators, 3), s
    generator_width : ndarray, shape (n_generators, 3), s
    image_generators : ndarray, shape (n_images, n_generators)
        Weight of each generator in each image's response.
    subject_mixing : ndarray, shape (n_subjects, n_chans, n_sources)
        Each subject's forward model (gain included).
    noise_level : ndarray, shape (n_subjects,)
        Each subject's noise RMS relative to the median subject.
    cap : ndarray, shape (n_subjects, n_sessions, n_chans, n_chans)
        The session's electrode shift: ``(1 - leak) I + leak K``.
    impedance : ndarray, shape (n_subjects, n_sessions, n_chans)
    bad_channels : ndarray of bool, shape (n_subjects, n_sessions, n_chans)
    alpha_level : ndarray, shape (n_subjects, n_sessions)
    session_offset : ndarray, shape (n_subjects, n_sessions, n_chans), µV
    noise_patterns : ndarray, shape (n_chans, n_noise_sources)
    alpha_pattern, blink_pattern, muscle_pattern, movement_pattern : ndarray, shape (n_chans,)
    noise_uv : float
        RMS of the background noise in µV.
    """

    preset: TwinPreset
    seed: int
    specs: list[ImageSpec]
    times: np.ndarray
    source_patterns: np.ndarray
    generator_amplitude: np.ndarray
    generator_latency: np.ndarray
    generator_width: np.ndarray
    image_generators: np.ndarray
    subject_mixing: np.ndarray
    noise_level: np.ndarray
    cap: np.ndarray
    impedance: np.ndarray
    bad_channels: np.ndarray
    alpha_level: np.ndarray
    session_offset: np.ndarray
    noise_patterns: np.ndarray
    alpha_pattern: np.ndarray
    blink_pattern: np.ndarray
    muscle_pattern: np.ndarray
    movement_pattern: np.ndarray
    noise_uv: float = 10.0
    blink_probability: float = 0.05
    line_residue_uv: float = 0.5
    image_gain: float = 0.5

    @classmethod
    def from_preset(cls, preset: str | TwinPreset = "default", seed: int = 0) -> TwinModel:
        """Draw the ground truth of a twin deterministically from ``seed``.

        Streams: ``[seed, 0]`` the templates and the image pool, ``[seed, 4]`` the
        subjects and sessions, ``[seed, 5]`` the day-to-day share of the templates,
        ``[seed, 1, subject]`` which images a subject sees, ``[seed, 2, ...]`` each
        run's trials.
        """
        preset = get_preset(preset)
        rng = np.random.default_rng([seed, 0])
        positions = channel_positions(DEFAULT_CHANNELS)
        n_chans, n_sources = len(DEFAULT_CHANNELS), 16
        times = np.arange(preset.n_times) / preset.sfreq
        # Visual sources sit mostly over the back of the head (y < 0).
        posterior = 1.0 / (1.0 + np.exp(positions[:, 1] / 0.02))
        bias = 0.2 + posterior
        patterns = _smooth_patterns(rng, positions, n_sources, 0.035, bias, signed=False)
        patterns /= np.abs(patterns).max(axis=0)

        n_cat, n_peaks = len(CATEGORIES), len(PEAKS)
        common = np.stack([sign * rng.uniform(0.5, 1.0, n_sources)
                           for _, _, sign in PEAKS])
        shared_amp = np.zeros((n_cat, n_peaks, n_sources))
        cat_latency = np.zeros((n_cat, n_peaks))
        for c in range(n_cat):
            for k, (latency, _, sign) in enumerate(PEAKS):
                cat_latency[c, k] = latency + rng.normal(0, 0.008)
                amplitude = rng.normal(0, 1.0, n_sources) * (rng.random(n_sources) < 0.5)
                shared_amp[c, k] = sign * amplitude
        attr_amp, attr_latency = [], []
        for values in ATTRIBUTES.values():
            attr_amp.append(rng.normal(0, 0.6, (len(values), n_sources)))
            attr_latency.append(rng.uniform(0.28, 0.36))
        n_sub, n_ses = len(preset.subjects), preset.n_sessions
        occipital = np.array([name.startswith(("O", "PO", "POO", "OI", "Iz"))
                              for name in DEFAULT_CHANNELS])
        alpha = occipital * rng.uniform(0.6, 1.0, n_chans)
        specs = sample_specs(rng, preset.images_per_category)

        # ---- subjects, sessions, trials -------------------------------------------
        rng = np.random.default_rng([seed, 4])
        # Generators: common, 20 categories, then every attribute value.
        n_attr_values = sum(len(v) for v in ATTRIBUTES.values())
        n_gen = 1 + n_cat + n_attr_values
        width = np.zeros((n_gen, n_peaks))
        width[: 1 + n_cat] = [w for _, w, _ in PEAKS]
        width[1 + n_cat:] = 0.05
        base_latency = np.zeros((n_gen, n_peaks))
        base_latency[0] = [lat for lat, _, _ in PEAKS]
        base_latency[1: 1 + n_cat] = cat_latency
        slot_of_attr = np.concatenate([np.full(len(v), a) for a, v in
                                       enumerate(ATTRIBUTES.values())])
        base_latency[1 + n_cat:, 0] = np.array(attr_latency)[slot_of_attr]
        base_latency[1 + n_cat:, 1:] = base_latency[1 + n_cat:, :1]

        amplitude = np.zeros((n_sub, n_gen, n_peaks, n_sources))
        latency = np.zeros((n_sub, n_gen, n_peaks))
        own = preset.subject_own_template
        for s in range(n_sub):
            own_amp = (rng.normal(0, 1.0, (n_cat, n_peaks, n_sources))
                       * (rng.random((n_cat, n_peaks, n_sources)) < 0.5)
                       * np.array([sign for _, _, sign in PEAKS])[None, :, None])
            own_attr = rng.normal(0, 0.6, (n_attr_values, n_sources))
            # Per-peak latency shift and gain: P1, N1, P2 and the image response.
            shift = rng.normal(0, preset.subject_latency_seconds, n_peaks + 1)
            gain = np.exp(rng.normal(0, preset.subject_amplitude_sd, n_peaks + 1))
            amplitude[s, 0] = common * gain[:n_peaks, None]
            amplitude[s, 1: 1 + n_cat] = (np.sqrt(1 - own) * shared_amp
                                          + np.sqrt(own) * own_amp) * gain[None, :n_peaks, None]
            attr = np.concatenate(attr_amp)
            amplitude[s, 1 + n_cat:, 0] = (np.sqrt(1 - own) * attr
                                           + np.sqrt(own) * own_attr) * gain[n_peaks]
            latency[s, : 1 + n_cat] = base_latency[: 1 + n_cat] + shift[None, :n_peaks]
            latency[s, 1 + n_cat:] = base_latency[1 + n_cat:] + shift[n_peaks]
        # Each session's own share of the category templates (day-to-day change).
        day_rng = np.random.default_rng([seed, 5])
        amplitude = np.repeat(amplitude[:, None], n_ses, axis=1)
        day = preset.session_own_template
        signs = np.array([sign for _, _, sign in PEAKS])[None, None, :, None]
        day_amp = (day_rng.normal(0, 1.0, (n_sub, n_ses, n_cat, n_peaks, n_sources))
                   * (day_rng.random((n_sub, n_ses, n_cat, n_peaks, n_sources)) < 0.5)
                   * signs[:, None])
        day_gain = np.sqrt((amplitude[:, :, 1: 1 + n_cat] ** 2).mean(axis=(2, 4), keepdims=True)
                           / (day_amp**2).mean(axis=(2, 4), keepdims=True))
        amplitude[:, :, 1: 1 + n_cat] = (np.sqrt(1 - day) * amplitude[:, :, 1: 1 + n_cat]
                                         + np.sqrt(day) * day_gain * day_amp)

        image_generators = np.zeros((len(specs), n_gen))
        image_generators[:, 0] = 1.0
        offsets = np.cumsum([0] + [len(v) for v in ATTRIBUTES.values()])
        for i, spec in enumerate(specs):
            image_generators[i, 1 + CATEGORIES.index(spec.category)] = 1.0
            for a, (name, values) in enumerate(ATTRIBUTES.items()):
                image_generators[i, 1 + n_cat + offsets[a]
                                 + values.index(getattr(spec, name))] = cls.image_gain

        # Each subject's head: the template's patterns mixed with the subject's own.
        mixing = np.empty((n_sub, n_chans, n_sources))
        t_share = preset.subject_own_topography
        for s in range(n_sub):
            mine = _smooth_patterns(rng, positions, n_sources, 0.035, bias, signed=False)
            blend = (np.sqrt(1 - t_share) * _unit_columns(patterns)
                     + np.sqrt(t_share) * _unit_columns(mine))
            mixing[s] = rng.uniform(0.7, 1.3) * blend / np.abs(blend).max(axis=0)
        if preset.subject_noise_quantiles:
            quantiles = [NormalDist().inv_cdf((i + 0.5) / n_sub) for i in range(n_sub)]
            noise_level = np.exp(preset.subject_noise_sd * rng.permutation(quantiles))
        else:
            noise_level = np.exp(rng.normal(0, preset.subject_noise_sd, n_sub))
        noise_level /= np.median(noise_level)

        cap = np.empty((n_sub, n_ses, n_chans, n_chans))
        dist_self = np.eye(n_chans, dtype=bool)
        for s in range(n_sub):
            for e in range(n_ses):
                direction = rng.normal(size=3)
                moved = positions + preset.session_cap_shift_m * direction / np.linalg.norm(direction)
                d = np.linalg.norm(moved[:, None] - positions[None], axis=-1)
                K = np.where(dist_self, 0.0, np.exp(-0.5 * (d / 0.015) ** 2))
                K /= K.sum(axis=1, keepdims=True)
                leak = rng.uniform(0.5, 1.0) * preset.session_cap_leak
                cap[s, e] = (1 - leak) * np.eye(n_chans) + leak * K
        impedance = np.exp(rng.normal(0, preset.session_impedance_sd, (n_sub, n_ses, n_chans)))
        bad = np.zeros((n_sub, n_ses, n_chans), dtype=bool)
        for s in range(n_sub):
            for e in range(n_ses):
                bad[s, e, rng.choice(n_chans, preset.session_bad_channels, replace=False)] = True
        alpha_level = np.exp(rng.normal(0, preset.session_alpha_sd, (n_sub, n_ses)))
        offset = rng.normal(0, 2.0, (n_sub, n_ses, n_chans))
        noise_patterns = _smooth_patterns(rng, positions, 40, 0.05)
        eye_distance = np.linalg.norm(positions - positions[list(DEFAULT_CHANNELS).index("Fpz")], axis=1)
        muscle = np.array([name.rstrip("0123456789z").startswith(MUSCLE_CHANNEL_PREFIXES)
                           for name in DEFAULT_CHANNELS], dtype=float)
        movement = _smooth_patterns(rng, positions, 1, 0.12)[:, 0]
        return cls(
            preset=preset, seed=seed, specs=specs, times=times,
            source_patterns=patterns, generator_amplitude=amplitude,
            generator_latency=latency, generator_width=width,
            image_generators=image_generators, subject_mixing=mixing,
            noise_level=noise_level, cap=cap, impedance=impedance, bad_channels=bad,
            alpha_level=alpha_level, session_offset=offset,
            noise_patterns=noise_patterns, alpha_pattern=alpha,
            blink_pattern=np.exp(-eye_distance / 0.03),
            muscle_pattern=muscle, movement_pattern=movement,
        )

    @property
    def signal_uv(self) -> float:
        """Scale of the source responses in µV for a subject of median noise level."""
        return self.preset.snr * self.noise_uv

    def generator_waveforms(self, subject: int, session: int, jitter_seconds) -> np.ndarray:
        """Every generator's source response at latency shifts ``jitter_seconds``.

        Returns
        -------
        G : ndarray, shape (n_jitters, n_generators, n_sources, n_times), µV
        """
        jitter = np.atleast_1d(np.asarray(jitter_seconds, dtype=float))
        lat = self.generator_latency[subject][None] + jitter[:, None, None]
        # (n_jitters, n_generators, n_peaks, n_times)
        waves = _gaussian(self.times, lat[..., None], self.generator_width[None, :, :, None])
        G = np.einsum("gks,jgkt->jgst", self.generator_amplitude[subject, session], waves)
        return G * self.signal_uv

    def source_response(self, subject: int, session: int, image_ids: np.ndarray,
                        jitter_seconds: np.ndarray | None = None,
                        amplitude: np.ndarray | None = None) -> np.ndarray:
        """Noise-free responses in the subject's source space.

        Parameters
        ----------
        subject : int
            Index into ``preset.subjects``.
        session : int
            Session index, 0-based.
        image_ids : ndarray of int, shape (n_trials,)
            Indices into :attr:`specs`.
        jitter_seconds : ndarray, shape (n_trials,), optional
            Each trial's latency shift (default: none, the subject's mean latency).
        amplitude : ndarray, shape (n_trials,), optional
            Each trial's amplitude factor (default: 1).

        Returns
        -------
        S : ndarray, shape (n_trials, n_sources, n_times), µV (up to the subject gain)
        """
        image_ids = np.asarray(image_ids)
        weights = self.image_generators[image_ids]
        if jitter_seconds is None:
            S = np.einsum("ng,gst->nst", weights,
                          self.generator_waveforms(subject, session, 0.0)[0])
        else:
            jitter = np.asarray(jitter_seconds, dtype=float)
            lat = self.generator_latency[subject][None] + jitter[:, None, None]
            waves = _gaussian(self.times, lat[..., None], self.generator_width[None, :, :, None])
            # (n_trials, n_generators, n_peaks, n_times), weighted by the image's generators
            waves *= weights[:, :, None, None]
            amp = self.generator_amplitude[subject, session]
            n_gen, n_peaks, n_sources = amp.shape
            S = np.matmul(amp.reshape(-1, n_sources).T,
                          waves.reshape(len(waves), n_gen * n_peaks, -1))
            S *= self.signal_uv
        if amplitude is not None:
            S = S * np.asarray(amplitude)[:, None, None]
        return S

    def session_matrix(self, subject: int, session: int) -> np.ndarray:
        """The session's linear map ``A``, shape (n_chans, n_chans).

        ``A = noise_level[s] * diag(impedance[s, e]) @ cap[s, e]``: the subject's noise
        level, the session's channel gains and its electrode shift (invertible:
        the cap's leak is below 0.5, so ``cap`` is diagonally dominant).
        """
        return (self.noise_level[subject] * self.impedance[subject, session][:, None]
                * self.cap[subject, session])

    def evoked(self, subject: int, session: int, image_ids: np.ndarray,
               jitter_seconds: np.ndarray | None = None,
               amplitude: np.ndarray | None = None) -> np.ndarray:
        """The noise-free trials: with no jitter and amplitude 1, their mean response.

        Parameters
        ----------
        subject : int
            Index into ``preset.subjects``.
        session : int
            Session index, 0-based.
        image_ids : ndarray of int, shape (n_trials,)
        jitter_seconds, amplitude : ndarray, shape (n_trials,), optional
            See :meth:`source_response`.

        Returns
        -------
        X : ndarray, shape (n_trials, n_chans, n_times), µV
        """
        S = self.source_response(subject, session, image_ids, jitter_seconds, amplitude)
        mixing = self.subject_mixing[subject] / self.noise_level[subject]
        A = self.session_matrix(subject, session) @ mixing
        X = np.matmul(A, S)
        return X + self.session_offset[subject, session][None, :, None]

    def noise_parts(self, rng: np.random.Generator, n_trials: int,
                    drift_path: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Noise before the session's cap, split into alpha and the rest.

        Parameters
        ----------
        rng : numpy.random.Generator
        n_trials : int
        drift_path : bool, default=False
            True: the baseline drift follows one slow path over the trials (an AR(1)
            process over consecutive trials, as in a run); False: every trial draws
            its own point of it (same marginal distribution).

        Returns
        -------
        rest : ndarray, shape (n_trials, n_chans, n_times), µV
            1/f sources and sensor noise, line residue, drift, blinks, muscle and
            movement artefacts.
        alpha_wave : ndarray, shape (n_trials, n_times), µV
            Occipital alpha at level 1: the alpha noise is
            ``alpha_pattern[:, None] * alpha_wave[n]`` (a session scales it by
            ``alpha_level``).
        """
        preset = self.preset
        n_times, sfreq = len(self.times), preset.sfreq
        n_chans, n_noise = self.noise_patterns.shape
        freqs = np.fft.rfftfreq(n_times, 1 / sfreq)
        pink = 1.0 / np.sqrt(np.maximum(freqs, 1.0))
        scale = self.noise_uv / np.sqrt(1.0 + 0.25)
        sources = _coloured(rng, (n_trials, n_noise, n_times), pink)
        X = np.matmul(self.noise_patterns, sources) / np.sqrt(n_noise / 4)
        X += 0.5 * _coloured(rng, (n_trials, n_chans, n_times), pink)
        line_phase = rng.uniform(0, 2 * np.pi, (n_trials, 1, 1))
        X += (self.line_residue_uv / self.noise_uv) * np.sin(
            2 * np.pi * 50.0 * self.times[None, None] + line_phase)
        X *= scale
        alpha_freq = rng.uniform(8.0, 12.0, (n_trials, 1))
        envelope = rng.gamma(2.0, 0.5, (n_trials, 1))
        phase = rng.uniform(0, 2 * np.pi, (n_trials, 1))
        wave = envelope * np.sin(2 * np.pi * alpha_freq * self.times[None] + phase)
        alpha_wave = 1.2 * scale * wave
        # Slow drift: each channel's baseline and slope wander over trials.
        level = rng.standard_normal((n_trials, n_chans))
        slope = rng.standard_normal((n_trials, n_chans))
        if drift_path:
            phi = 0.95
            for n in range(1, n_trials):
                level[n] = phi * level[n - 1] + np.sqrt(1 - phi**2) * level[n]
                slope[n] = phi * slope[n - 1] + np.sqrt(1 - phi**2) * slope[n]
        ramp = (self.times - self.times.mean()) / max(self.times[-1], 1e-9)
        X += preset.drift_uv * (level[:, :, None] + 0.5 * slope[:, :, None] * ramp)
        duration = self.times[-1]
        for n in np.flatnonzero(rng.random(n_trials) < self.blink_probability):
            onset = rng.uniform(-0.1, duration)
            bump = 120.0 * _gaussian(self.times, onset + 0.1, 0.05)
            X[n] += self.blink_pattern[:, None] * bump[None]
        for n in np.flatnonzero(rng.random(n_trials) < preset.muscle_probability):
            centre = rng.uniform(0, duration)
            burst = rng.standard_normal(n_times) * _gaussian(self.times, centre, 0.06)
            side = rng.uniform(0.3, 1.0, n_chans) * self.muscle_pattern
            X[n] += 30.0 * side[:, None] * burst[None]
        for n in np.flatnonzero(rng.random(n_trials) < preset.movement_probability):
            centre = rng.uniform(-0.2, duration + 0.2)
            sway = 60.0 * rng.choice([-1.0, 1.0]) * _gaussian(self.times, centre, 0.15)
            X[n] += self.movement_pattern[:, None] * sway[None]
        return X, alpha_wave

    def bad_channel_noise(self, rng: np.random.Generator, n_trials: int, subject: int,
                          session: int) -> np.ndarray:
        """White noise on the session's bad channels, shape (n_trials, n_chans, n_times), µV."""
        B = np.zeros((n_trials, *self.bad_channels.shape[2:], len(self.times)))
        bad = np.flatnonzero(self.bad_channels[subject, session])
        B[:, bad] = (self.preset.session_bad_noise * self.noise_uv * self.noise_level[subject]
                     * rng.standard_normal((n_trials, len(bad), len(self.times))))
        return B

    def noise(self, rng: np.random.Generator, n_trials: int, subject: int = 0,
              session: int = 0, drift_path: bool = False) -> np.ndarray:
        """Draw noise-only trials of a subject and session (offset not added).

        ``A[s, e] @ (rest + alpha_level[s, e] * alpha) + B[s, e]``, see
        :meth:`noise_parts`, :meth:`session_matrix` and :meth:`bad_channel_noise`.

        Returns
        -------
        noise : ndarray, shape (n_trials, n_chans, n_times), µV
        """
        rest, alpha_wave = self.noise_parts(rng, n_trials, drift_path)
        level = self.alpha_level[subject, session]
        N = rest + level * self.alpha_pattern[None, :, None] * alpha_wave[:, None, :]
        N = np.matmul(self.session_matrix(subject, session), N)
        return N + self.bad_channel_noise(rng, n_trials, subject, session)

    def subject_images(self, subject: int) -> np.ndarray:
        """Every image a subject sees, in the order its runs show them, run by run.

        As in ds005589, a subject sees each image at most once (Xue et al.: "no
        multiple repetitions of the same image"), and the subjects draw from one
        shared pool, so an image recurs across subjects. Each category's images are
        dealt out to the subject's runs without replacement.

        Returns
        -------
        image_ids : ndarray of int, shape (n_sessions, n_runs, n_categories, trials_per_category)
        """
        preset = self.preset
        rng = np.random.default_rng([self.seed, 1, subject])
        per_cat, n_seen = preset.images_per_category, preset.images_seen_per_category
        seen = np.stack([c * per_cat + rng.choice(per_cat, n_seen, replace=False)
                         for c in range(len(CATEGORIES))])  # (n_categories, n_seen)
        seen = seen.reshape(len(CATEGORIES), preset.n_sessions, preset.n_runs,
                            preset.trials_per_category)
        return seen.transpose(1, 2, 0, 3)

    def run_images(self, subject: int, session: int, run: int) -> np.ndarray:
        """The image ids shown in one run, in presentation order (pseudo-random)."""
        rng = np.random.default_rng([self.seed, 1, subject, session, run])
        return rng.permutation(self.subject_images(subject)[session, run].ravel())

    def trial_variability(self, rng: np.random.Generator,
                          n_trials: int) -> tuple[np.ndarray, np.ndarray]:
        """Each trial's latency shift (s) and amplitude factor (mean 1)."""
        jitter = rng.normal(0, self.preset.trial_jitter_seconds, n_trials)
        sd = self.preset.trial_amplitude_sd
        amplitude = np.exp(rng.normal(-0.5 * sd**2, sd, n_trials))
        return jitter, amplitude

    def run_trials(self, subject: int, session: int, run: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate one run.

        Returns
        -------
        X : ndarray, shape (n_trials, n_chans, n_times), float32, µV
        image_ids : ndarray, shape (n_trials,), int
        """
        image_ids = self.run_images(subject, session, run)
        rng = np.random.default_rng([self.seed, 2, subject, session, run])
        jitter, amplitude = self.trial_variability(rng, len(image_ids))
        X = self.evoked(subject, session, image_ids, jitter, amplitude)
        X += self.noise(rng, len(image_ids), subject, session, drift_path=True)
        return X.astype(np.float32), image_ids
