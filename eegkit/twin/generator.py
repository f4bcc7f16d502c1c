"""The synthetic twin: a deterministic generator of ds005589's exact file layout.

The real data cannot be downloaded here, so :func:`make_twin` writes the same files
the published dataset has (run ``.npy`` arrays, label-list ``.json``, ``_image.csv``,
``captions.txt``, images), and eegkit's real loader reads them. The EEG is a sum of

(a) category-specific evoked responses (P1/N1/P2-like peaks at about 100, 170 and
    250 ms, each with its own scalp topography), on top of a visual response common
    to all categories;
(b) a weaker image-specific response driven by the attributes the caption states;
(c) per-subject spatial mixing and gain;
(d) per-session drift: channel offsets, a gain, and a small channel shift (as after
    re-capping);
(e) background noise with a 1/f spectrum, alpha bursts (8-12 Hz, occipital), 50 Hz
    line residue and occasional blinks on frontal channels.

:class:`TwinModel` holds this ground truth so that a Bayes-optimal ceiling can be
computed: :meth:`TwinModel.evoked` is the noise-free mean of a trial and
:meth:`TwinModel.noise` draws noise-only trials. :mod:`eegkit.ceiling` computes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eegkit._io import building_dir
from eegkit.data.channels import CATEGORIES, DEFAULT_CHANNELS, HANDOUT_SUBJECTS, channel_positions
from eegkit.data.loading import TWIN_MANIFEST
from eegkit.twin.stimuli import ATTRIBUTES, ImageSpec, draw_image, sample_specs

GENERATOR_VERSION = 2
FRONTAL_BLINK_CHANNELS = ("Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8")


@dataclass(frozen=True)
class TwinPreset:
    """Size and difficulty of a synthetic twin.

    Parameters
    ----------
    name : str
    subjects : tuple of str, default=HANDOUT_SUBJECTS
    n_sessions : int, default=5
    n_runs : int, default=4
        Runs per session.
    trials_per_category : int, default=5
        Trials of each category in a run (100 trials per run at 5).
    n_times : int, default=500
        Samples per trial.
    sfreq : float, default=1000.0
        Sampling rate in Hz; ``n_times / sfreq`` is the 0.5 s epoch.
    images_per_category : int, default=25
        Size of the image pool of each category; runs draw from it, so images repeat
        across runs, sessions and subjects as in ds005589.
    image_size : int, default=224
        Image side in pixels.
    snr : float, default=0.17
        Amplitude of the evoked responses relative to the background noise's RMS.
        At 0.17, a shrinkage-LDA on the default twin's session split scores about
        38 % (20 classes; 5 % chance), in the range of good models on real EEG.
    """

    name: str
    subjects: tuple[str, ...] = HANDOUT_SUBJECTS
    n_sessions: int = 5
    n_runs: int = 4
    trials_per_category: int = 5
    n_times: int = 500
    sfreq: float = 1000.0
    images_per_category: int = 25
    image_size: int = 224
    snr: float = 0.17

    def __post_init__(self):
        if self.trials_per_category > self.images_per_category:
            raise ValueError(
                f"trials_per_category={self.trials_per_category} exceeds "
                f"images_per_category={self.images_per_category}: a run shows each "
                "image at most once; raise images_per_category"
            )

    @property
    def n_trials(self) -> int:
        per_run = self.trials_per_category * len(CATEGORIES)
        return len(self.subjects) * self.n_sessions * self.n_runs * per_run


PRESETS: dict[str, TwinPreset] = {
    # 13 subjects x 5 sessions x 1 run x 20 trials, 125 samples at 250 Hz (the size
    # of the dataset's downsampled copy): 1,300 trials, ~80 MB, written in seconds.
    "tiny": TwinPreset("tiny", n_runs=1, trials_per_category=1, n_times=125,
                       sfreq=250.0, images_per_category=4),
    # 13 x 5 x 1 run x 100 trials at the real 122 x 500: 6,500 trials, ~1.6 GB.
    "default": TwinPreset("default", n_runs=1, images_per_category=20),
    # The real size: 13 x 5 x 4 x 100 = 26,000 trials, ~6.3 GB.
    "full": TwinPreset("full", images_per_category=50),
}


def get_preset(preset: str | TwinPreset, **overrides) -> TwinPreset:
    """A preset by name (``"tiny"``, ``"default"``, ``"full"``), with fields replaced."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown twin preset {preset!r}; choose one of {list(PRESETS)}")
        preset = PRESETS[preset]
    return dataclasses.replace(preset, **overrides) if overrides else preset


def _gaussian(t: np.ndarray, centre: float, width: float) -> np.ndarray:
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


@dataclass
class TwinModel:
    """The ground truth of a twin: everything needed to generate or decode a trial.

    Build it with :meth:`from_preset`; all arrays are derived from ``seed``.

    Attributes
    ----------
    preset : TwinPreset
    seed : int
    specs : list of ImageSpec
        The image pool; index = image number in file names.
    times : ndarray, shape (n_times,), s
    source_patterns : ndarray, shape (n_chans, n_sources)
        Scalp pattern of each latent source (template head).
    common_response : ndarray, shape (n_sources, n_times), µV
        Visual response shared by every category.
    category_templates : ndarray, shape (n_categories, n_sources, n_times), µV
        Category-specific evoked responses in source space.
    attribute_templates : dict of str -> ndarray, shape (n_values, n_sources, n_times)
        Image-specific responses, one per value of each caption attribute.
    subject_mixing : ndarray, shape (n_subjects, n_chans, n_sources)
        Per-subject scalp patterns, gain included.
    session_offset : ndarray, shape (n_subjects, n_sessions, n_chans), µV
    session_gain : ndarray, shape (n_subjects, n_sessions)
    session_shift : ndarray, shape (n_subjects, n_sessions)
        Fraction in [0, 0.3] of each channel's signal that leaks into its nearest
        neighbour (cap re-positioning).
    neighbour : ndarray, shape (n_chans,), int
        Nearest electrode of each electrode.
    noise_patterns : ndarray, shape (n_chans, n_noise_sources)
    alpha_pattern : ndarray, shape (n_chans,)
    blink_pattern : ndarray, shape (n_chans,)
    noise_uv : float
        RMS of the background noise in µV.
    """

    preset: TwinPreset
    seed: int
    specs: list[ImageSpec]
    times: np.ndarray
    source_patterns: np.ndarray
    common_response: np.ndarray
    category_templates: np.ndarray
    attribute_templates: dict[str, np.ndarray]
    subject_mixing: np.ndarray
    session_offset: np.ndarray
    session_gain: np.ndarray
    session_shift: np.ndarray
    neighbour: np.ndarray
    noise_patterns: np.ndarray
    alpha_pattern: np.ndarray
    blink_pattern: np.ndarray
    noise_uv: float = 10.0
    blink_probability: float = 0.05
    line_residue_uv: float = 0.5
    image_gain: float = 0.5

    @classmethod
    def from_preset(cls, preset: str | TwinPreset = "default", seed: int = 0) -> TwinModel:
        """Draw the ground truth of a twin deterministically from ``seed``."""
        preset = get_preset(preset)
        rng = np.random.default_rng([seed, 0])
        positions = channel_positions(DEFAULT_CHANNELS)
        n_chans, n_sources = len(DEFAULT_CHANNELS), 16
        times = np.arange(preset.n_times) / preset.sfreq
        # Visual sources sit mostly over the back of the head (y < 0).
        posterior = 1.0 / (1.0 + np.exp(positions[:, 1] / 0.02))
        patterns = _smooth_patterns(rng, positions, n_sources, 0.035, 0.2 + posterior, signed=False)
        patterns /= np.abs(patterns).max(axis=0)

        peaks = ((0.100, 0.012, 1.0), (0.170, 0.018, -1.0), (0.250, 0.030, 1.0))
        common = np.zeros((n_sources, len(times)))
        for latency, width, sign in peaks:
            common += sign * np.outer(rng.uniform(0.5, 1.0, n_sources), _gaussian(times, latency, width))
        n_cat = len(CATEGORIES)
        templates = np.zeros((n_cat, n_sources, len(times)))
        for c in range(n_cat):
            for latency, width, sign in peaks:
                jitter = rng.normal(0, 0.008)
                amplitude = rng.normal(0, 1.0, n_sources) * (rng.random(n_sources) < 0.5)
                templates[c] += sign * np.outer(amplitude, _gaussian(times, latency + jitter, width))
        attribute_templates = {
            name: rng.normal(0, 0.6, (len(values), n_sources))[:, :, None]
            * _gaussian(times, rng.uniform(0.28, 0.36), 0.05)[None, None, :]
            for name, values in ATTRIBUTES.items()
        }

        n_sub, n_ses = len(preset.subjects), preset.n_sessions
        mixing = np.empty((n_sub, n_chans, n_sources))
        for s in range(n_sub):
            wobble = _smooth_patterns(rng, positions, n_sources, 0.05) * 0.35
            mixing[s] = rng.uniform(0.7, 1.3) * (patterns + wobble)
        dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        np.fill_diagonal(dist, np.inf)

        n_noise = 40
        occipital = np.array([name.startswith(("O", "PO", "POO", "OI", "Iz")) for name in DEFAULT_CHANNELS])
        alpha = occipital * rng.uniform(0.6, 1.0, n_chans)
        eye_distance = np.linalg.norm(positions - positions[list(DEFAULT_CHANNELS).index("Fpz")], axis=1)
        blink = np.exp(-eye_distance / 0.03)
        specs = sample_specs(rng, preset.images_per_category)
        return cls(
            preset=preset,
            seed=seed,
            specs=specs,
            times=times,
            source_patterns=patterns,
            common_response=common,
            category_templates=templates,
            attribute_templates=attribute_templates,
            subject_mixing=mixing,
            session_offset=rng.normal(0, 2.0, (n_sub, n_ses, n_chans)),
            session_gain=rng.uniform(0.85, 1.15, (n_sub, n_ses)),
            session_shift=rng.uniform(0.0, 0.3, (n_sub, n_ses)),
            neighbour=dist.argmin(axis=1),
            noise_patterns=_smooth_patterns(rng, positions, n_noise, 0.05),
            alpha_pattern=alpha,
            blink_pattern=blink,
        )

    def source_response(self, image_ids: np.ndarray) -> np.ndarray:
        """Noise-free responses in source space, before any subject or session.

        Parameters
        ----------
        image_ids : ndarray of int, shape (n_trials,)
            Indices into :attr:`specs`.

        Returns
        -------
        S : ndarray, shape (n_trials, n_sources, n_times), µV (up to the subject gain)
        """
        specs = [self.specs[i] for i in image_ids]
        category = np.array([CATEGORIES.index(s.category) for s in specs])
        S = self.common_response[None] + self.category_templates[category]
        for name, templates in self.attribute_templates.items():
            values = np.array([ATTRIBUTES[name].index(getattr(s, name)) for s in specs])
            S = S + self.image_gain * templates[values]
        return S * (self.preset.snr * self.noise_uv)

    def evoked(self, subject: int, session: int, image_ids: np.ndarray) -> np.ndarray:
        """The noise-free mean of trials: what an ideal observer would expect.

        Parameters
        ----------
        subject : int
            Index into ``preset.subjects``.
        session : int
            Session index, 0-based.
        image_ids : ndarray of int, shape (n_trials,)

        Returns
        -------
        X : ndarray, shape (n_trials, n_chans, n_times), µV
        """
        sensor = np.einsum("cs,nst->nct", self.subject_mixing[subject], self.source_response(image_ids))
        return self._session_drift(sensor, subject, session)

    def _session_drift(self, X: np.ndarray, subject: int, session: int) -> np.ndarray:
        shift = self.session_shift[subject, session]
        X = (1 - shift) * X + shift * X[:, self.neighbour]
        X = self.session_gain[subject, session] * X
        return X + self.session_offset[subject, session][None, :, None]

    def noise(self, rng: np.random.Generator, n_trials: int, subject: int = 0,
              session: int = 0) -> np.ndarray:
        """Draw noise-only trials (background, alpha, line residue, blinks).

        Parameters
        ----------
        rng : numpy.random.Generator
        n_trials : int
        subject, session : int
            Select the session drift's gain and channel shift (noise passes through
            the same cap); the offset is not added.

        Returns
        -------
        noise : ndarray, shape (n_trials, n_chans, n_times), µV
        """
        n_times, sfreq = len(self.times), self.preset.sfreq
        n_chans, n_noise = self.noise_patterns.shape
        freqs = np.fft.rfftfreq(n_times, 1 / sfreq)
        pink = 1.0 / np.sqrt(np.maximum(freqs, 1.0))

        def coloured(shape):
            spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1) * pink
            x = np.fft.irfft(spectrum, n=n_times, axis=-1)
            return x / x.std()

        sources = coloured((n_trials, n_noise, n_times))
        X = np.einsum("cs,nst->nct", self.noise_patterns, sources) / np.sqrt(n_noise / 4)
        X += 0.5 * coloured((n_trials, n_chans, n_times))
        alpha_freq = rng.uniform(8.0, 12.0, (n_trials, 1))
        envelope = rng.gamma(2.0, 0.5, (n_trials, 1))
        phase = rng.uniform(0, 2 * np.pi, (n_trials, 1))
        alpha = envelope * np.sin(2 * np.pi * alpha_freq * self.times[None] + phase)
        X += 1.2 * self.alpha_pattern[None, :, None] * alpha[:, None, :]
        line_phase = rng.uniform(0, 2 * np.pi, (n_trials, 1, 1))
        X += (self.line_residue_uv / self.noise_uv) * np.sin(
            2 * np.pi * 50.0 * self.times[None, None] + line_phase
        )
        X *= self.noise_uv / np.sqrt(1.0 + 0.25)
        blinks = np.flatnonzero(rng.random(n_trials) < self.blink_probability)
        for n in blinks:
            onset = rng.uniform(-0.1, self.times[-1])
            bump = 120.0 * _gaussian(self.times, onset + 0.1, 0.05)
            X[n] += self.blink_pattern[:, None] * bump[None]
        shift = self.session_shift[subject, session]
        X = (1 - shift) * X + shift * X[:, self.neighbour]
        return self.session_gain[subject, session] * X

    def run_images(self, subject: int, session: int, run: int) -> np.ndarray:
        """The image ids shown in one run, in presentation order (pseudo-random)."""
        rng = np.random.default_rng([self.seed, 1, subject, session, run])
        per_cat = self.preset.images_per_category
        chosen = [
            c * per_cat + rng.choice(per_cat, self.preset.trials_per_category, replace=False)
            for c in range(len(CATEGORIES))
        ]
        return rng.permutation(np.concatenate(chosen))

    def run_trials(self, subject: int, session: int, run: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate one run.

        Returns
        -------
        X : ndarray, shape (n_trials, n_chans, n_times), float32, µV
        image_ids : ndarray, shape (n_trials,), int
        """
        image_ids = self.run_images(subject, session, run)
        rng = np.random.default_rng([self.seed, 2, subject, session, run])
        X = self.evoked(subject, session, image_ids)
        X += self.noise(rng, len(image_ids), subject, session)
        return X.astype(np.float32), image_ids


def image_name(model: TwinModel, image_id: int) -> str:
    """File stem of a twin image, in the style of the PASCAL ids (``000123``)."""
    return f"{image_id + 1:06d}"


def make_twin(
    root: str | os.PathLike,
    *,
    preset: str | TwinPreset = "default",
    seed: int = 0,
    layout: str = "course",
    captions: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **overrides,
) -> TwinModel:
    """Write a synthetic twin of ds005589 at ``root``.

    The files are exactly those eegkit's loader reads from the real dataset. Runs
    are generated and written one at a time, so memory stays at one run even for
    the ``full`` preset. The twin is built in ``<root>.partial`` and renamed at the
    end, so an interrupted run never leaves a half-written twin at ``root``.

    Parameters
    ----------
    root : path-like
        Folder to create.
    preset : {"tiny", "default", "full"} or TwinPreset, default="default"
    seed : int, default=0
        Same seed and preset, same bytes.
    layout : {"course", "openneuro"}, default="course"
    captions : bool, default=True
        False writes the form of the published OpenNeuro copy: no ``captions.txt``
        and no images (the EEG, label JSONs and ``_image.csv`` files only).
    overwrite : bool, default=False
        Replace an existing folder at ``root``.
    progress : bool, default=True
        Show a progress bar over runs.
    **overrides
        Fields of :class:`TwinPreset` to replace (e.g. ``subjects=("sub-02",)``).

    Returns
    -------
    model : TwinModel
        The ground truth the twin was drawn from.
    """
    if layout not in ("course", "openneuro"):
        raise ValueError(f"layout must be 'course' or 'openneuro', not {layout!r}")
    root = Path(root)
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
        shutil.rmtree(root)
    preset = get_preset(preset, **overrides)
    model = TwinModel.from_preset(preset, seed)
    with building_dir(root) as partial:
        if captions:
            _write_stimuli(partial, model)
        _write_runs(partial, model, layout, seed, progress, captions)
    return model


def _write_stimuli(partial: Path, model: TwinModel) -> None:
    """The images and captions.txt (the course's distribution; not in the published copy)."""
    preset = model.preset
    images = partial / "images"
    images.mkdir()
    for image_id, spec in enumerate(model.specs):
        draw_image(spec, preset.image_size).save(images / f"{image_name(model, image_id)}.jpg", quality=90)
    captions = pd.DataFrame(
        {
            "dataset": "twin",
            "category": [s.category for s in model.specs],
            "image_name": [f"{image_name(model, i)}.jpg" for i in range(len(model.specs))],
            "abstracted": [s.caption for s in model.specs],
        }
    )
    captions.to_csv(partial / "captions.txt", sep="\t", index=False)


def _write_runs(partial: Path, model: TwinModel, layout: str, seed: int, progress: bool,
                captions: bool) -> None:
    """Every run's EEG, label JSON and image CSV, and the twin's manifest."""
    preset = model.preset
    eeg_root = partial / "derivatives" / "preprocessed_data" if layout == "openneuro" else partial
    jobs = [
        (s, ses, r)
        for s in range(len(preset.subjects))
        for ses in range(preset.n_sessions)
        for r in range(preset.n_runs)
    ]
    for s, ses, r in tqdm(jobs, desc=f"twin {preset.name}", unit="run", disable=not progress):
        subject, session, run = preset.subjects[s], f"ses-{ses + 1:02d}", f"run-{r + 1:02d}"
        stem = f"{subject}_{session}_task-lowSpeed_{run}"
        eeg_dir = eeg_root / subject / session
        raw_dir = partial / subject / session
        eeg_dir.mkdir(parents=True, exist_ok=True)
        raw_dir.mkdir(parents=True, exist_ok=True)
        X, image_ids = model.run_trials(s, ses, r)
        np.save(eeg_dir / f"{stem}_1000Hz.npy", X)
        labels = [CATEGORIES.index(model.specs[i].category) for i in image_ids]
        (eeg_dir / f"{stem}_1000Hz.json").write_text(json.dumps(labels, indent=2))
        # The published CSVs point at resized copies on the experiment PC.
        paths = [
            f"C:\\stimuli\\pic_10000_resized\\{model.specs[i].category}\\"
            f"{image_name(model, i)}_resized.jpg"
            for i in image_ids
        ]
        pd.DataFrame({"FilePath": paths}).to_csv(raw_dir / f"{stem}_image.csv", index=False)

    manifest = {
        "generator": "eegkit.twin.make_twin",
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "seed": seed,
        "layout": layout,
        "captions": captions,
        "preset_fields": dataclasses.asdict(preset),
    }
    (partial / TWIN_MANIFEST).write_text(json.dumps(manifest, indent=2))


def load_twin_model(root: str | os.PathLike) -> TwinModel:
    """Rebuild the ground truth of the twin at ``root`` from its manifest."""
    manifest_path = Path(root) / TWIN_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found; {root} is not an eegkit twin")
    manifest = json.loads(manifest_path.read_text())
    fields = manifest["preset_fields"]
    fields["subjects"] = tuple(fields["subjects"])
    return TwinModel.from_preset(TwinPreset(**fields), manifest["seed"])
