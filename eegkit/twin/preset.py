"""The twin's settings: :class:`TwinPreset` (size and difficulty), the presets and the
generator's version.

Every source of variability of the twin (:mod:`eegkit.twin.model`) is a field of
:class:`TwinPreset` with its default and the reason real EEG has it.
:data:`GENERATOR_VERSION` names the draw: a twin written by another version is
written again (:mod:`eegkit.twin.resolve`), and its ground truth cannot be rebuilt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from eegkit._checks import check_option
from eegkit.data.channels import CATEGORIES, HANDOUT_SUBJECTS

GENERATOR_VERSION = 4
#: For each :class:`TwinPreset` field added after this version's first release, the
#: value that draws the twins written before it existed (their manifests lack the
#: field). Empty: no field has been added since version 4.
FIELDS_BEFORE_ADDED: dict[str, object] = {}


@dataclass(frozen=True)
class TwinPreset:
    """Size and difficulty of a synthetic twin.

    The size fields differ between presets; the generator settings (``snr`` and
    below) are the same for every preset, calibrated on ``full`` against what
    models score on the real ds005589 with ``benchmarks/twin_calibration.py``. Each
    source of variability has a documented default and the reason real EEG has it.

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
    images_per_category : int, default=125
        Size of the image pool of each category. As in ds005589, a subject sees each
        image at most once and the subjects share the pool, so an image recurs
        across subjects only: ds005589's 13 course subjects see 26,000 trials of
        10,000 images, each image 2.6 times on average; the presets keep that
        ratio (``full``: 400 a category, the most distinct captions the twin's
        attributes allow in a pool that leaves the twin CLIP's pretraining its own).
        At least :attr:`images_seen_per_category`.
    image_size : int, default=224
        Image side in pixels.
    snr : float, default=0.12
        Amplitude of the evoked responses relative to the background noise's RMS,
        for a subject of median noise level. Version 4 sets it so that, on ``full``
        and averaged over seeds 0-3, the best classifier of the report lands in the
        middle of what the best models score on a held-out session of the real
        recordings (9-12.5 %). Measured with the LDA of per-subject z-scored 50 ms
        bins (50-350 ms), session split, seeds 0-3: 9.5-12.4 % at 0.12 (the mean
        10.4 %); at 0.09, seeds 1-3 gave 7.8-8.3 %. Per-recording z-scoring reads
        1.3 times that (docs/twin-calibration.md). Version 3's 0.42 matched the
        published FC but let the multi-head model reach 54 % on ``full``.
    subject_own_topography : float, default=0.3
        Share of each subject's scalp patterns that is the subject's own (the rest
        is the template head): heads, skulls and folding differ between people.
        Version 3 had 0.9, which made subjects so unlike each other that one
        classifier head per subject (notebook 03) read 3-4 times what a model
        shared by all subjects could, and a per-subject LDA as much as the
        multi-head model (25 % on ``default``); on the real recordings one model
        for all subjects is what works (a joint EEGNet 10.4 %, multi-head designs
        5-7 %, shared/spec/real-data-results.md).
    subject_latency_seconds : float, default=0.012
        SD of each subject's shift of every peak's latency (P1, N1, P2, the image
        response): peak latencies differ by 10-20 ms between people.
    subject_amplitude_sd : float, default=0.3
        SD of the log amplitude of each subject's peaks: peak sizes differ between
        people.
    subject_own_template : float, default=0.15
        Share of the category templates' variance that is the subject's own:
        people do not respond identically to the same category, but most of a
        category's response is shared (see ``subject_own_topography``).
    subject_noise_sd : float, default=0.35
        SD of the log of each subject's noise level (signal-to-noise spread): some
        subjects record clean, some near chance, as in Wang et al.
    subject_noise_quantiles : bool, default=True
        Give the subjects evenly spaced quantiles of that log-normal (in a random
        order) instead of independent draws: every cohort then has the same spread
        and is as hard as another seed's, where independent draws gave seed 1 of
        ``full`` two outlying subjects (2.2 and 2.8 times the median) and an ideal
        observer 9 points lower than seed 0's. ``False`` draws the twins written
        before this field existed.
    session_own_template : float, default=0.4
        Share of the category templates' variance that is the session's own: the
        responses change from day to day (state, attention, familiarity with the
        images), so a new session looks only partly like the ones trained on.
    session_cap_leak : float, default=0.45
        Largest share of each channel's signal that comes from the electrodes
        around where it sat in another session (cap placed 1 cm off).
    session_cap_shift_m : float, default=0.01
        Distance in metres the cap moves between sessions.
    session_impedance_sd : float, default=0.4
        SD of the log gain of each channel in each session: impedances change when
        the cap is put on again.
    session_bad_channels : int, default=2
        Channels per session with a bad contact (white noise of
        ``session_bad_noise`` times the background RMS), different every session:
        a decoder trained on other days has not learnt to ignore them.
    session_bad_noise : float, default=20.0
    session_alpha_sd : float, default=0.5
        SD of the log alpha level of each session: alertness and fatigue differ
        between days.
    trial_jitter_seconds : float, default=0.015
        SD of each trial's latency shift of the whole evoked response: single-trial
        ERPs jitter by 10-20 ms.
    trial_amplitude_sd : float, default=0.35
        SD of the log amplitude of each trial's evoked response (attention, habituation).
    drift_uv : float, default=8.0
        RMS of the slow drift of each channel's baseline across trials of a run
        (sweat, electrode polarisation), in µV.
    muscle_probability : float, default=0.04
        Share of trials with a muscle burst (20-100 Hz, temporal channels, ~30 µV).
    movement_probability : float, default=0.02
        Share of trials with a movement artefact (slow, large, all channels).
    """

    name: str
    subjects: tuple[str, ...] = HANDOUT_SUBJECTS
    n_sessions: int = 5
    n_runs: int = 4
    trials_per_category: int = 5
    n_times: int = 500
    sfreq: float = 1000.0
    images_per_category: int = 125
    image_size: int = 224
    snr: float = 0.12
    subject_own_topography: float = 0.3
    subject_latency_seconds: float = 0.012
    subject_amplitude_sd: float = 0.3
    subject_own_template: float = 0.15
    subject_noise_sd: float = 0.35
    subject_noise_quantiles: bool = True
    session_own_template: float = 0.4
    session_cap_leak: float = 0.45
    session_cap_shift_m: float = 0.01
    session_impedance_sd: float = 0.4
    session_bad_channels: int = 2
    session_bad_noise: float = 20.0
    session_alpha_sd: float = 0.5
    trial_jitter_seconds: float = 0.015
    trial_amplitude_sd: float = 0.35
    drift_uv: float = 8.0
    muscle_probability: float = 0.04
    movement_probability: float = 0.02

    def __post_init__(self):
        if self.images_seen_per_category > self.images_per_category:
            raise ValueError(
                f"a subject sees {self.images_seen_per_category} images of each category "
                f"(n_sessions={self.n_sessions} x n_runs={self.n_runs} x "
                f"trials_per_category={self.trials_per_category}) but "
                f"images_per_category={self.images_per_category}: a subject sees each "
                "image at most once; raise images_per_category"
            )
        for name in ("subject_own_topography", "subject_own_template",
                     "session_own_template"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} is a share; use a "
                                 "value in [0, 1]")
        if not 0.0 <= self.session_cap_leak < 0.5:
            raise ValueError(f"session_cap_leak={self.session_cap_leak} must be in "
                             "[0, 0.5) so that the cap's mixing stays invertible")

    @property
    def images_seen_per_category(self) -> int:
        """Images of each category one subject sees: one trial each."""
        return self.n_sessions * self.n_runs * self.trials_per_category

    @property
    def n_trials(self) -> int:
        per_run = self.trials_per_category * len(CATEGORIES)
        return len(self.subjects) * self.n_sessions * self.n_runs * per_run


PRESETS: dict[str, TwinPreset] = {
    # 13 subjects x 5 sessions x 1 run x 20 trials, 125 samples at 250 Hz (the size
    # of the dataset's downsampled copy): 1,300 trials of 500 images, ~80 MB.
    "tiny": TwinPreset("tiny", n_runs=1, trials_per_category=1, n_times=125,
                       sfreq=250.0, images_per_category=25),
    # 13 x 5 x 1 run x 100 trials at the real 122 x 500: 6,500 trials of 2,500
    # images, ~1.6 GB.
    "default": TwinPreset("default", n_runs=1, images_per_category=125),
    # The real size: 13 x 5 x 4 x 100 = 26,000 trials of 8,000 images, ~6.3 GB.
    "full": TwinPreset("full", images_per_category=400),
}


def get_preset(preset: str | TwinPreset, **overrides) -> TwinPreset:
    """A preset by name (``"tiny"``, ``"default"``, ``"full"``), with fields replaced."""
    if isinstance(preset, str):
        preset = PRESETS[check_option("preset", preset, PRESETS)]
    return dataclasses.replace(preset, **overrides) if overrides else preset


def written_preset_fields(manifest: dict) -> dict:
    """The :class:`TwinPreset` fields that drew the twin of ``manifest`` (as stored: JSON).

    A field added since the manifest was written takes the value that drew that twin
    (:data:`FIELDS_BEFORE_ADDED`), not today's default.
    """
    return {**FIELDS_BEFORE_ADDED, **manifest.get("preset_fields", {})}
