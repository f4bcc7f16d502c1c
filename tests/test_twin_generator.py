import hashlib

import numpy as np
import pytest
from scipy.signal import welch

from eegkit import CATEGORIES, load_dataset
from eegkit.twin.generator import TwinModel, get_preset, load_twin_model, make_twin
from eegkit.twin.stimuli import sample_specs


def digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kwargs = dict(preset="tiny", subjects=("sub-02",), progress=False)
    make_twin(tmp_path / "a", seed=1, **kwargs)
    make_twin(tmp_path / "b", seed=1, **kwargs)
    make_twin(tmp_path / "c", seed=2, **kwargs)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_workers_write_the_same_bytes(tmp_path):
    kwargs = {"preset": "tiny", "seed": 1, "subjects": ("sub-02", "sub-03"), "progress": False}
    make_twin(tmp_path / "one", **kwargs)
    make_twin(tmp_path / "two", workers=2, **kwargs)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    with pytest.raises(ValueError, match="positive number"):
        make_twin(tmp_path / "none", preset="tiny", workers=0)


def test_twin_refuses_to_overwrite(tmp_path, small_root):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_twin(small_root, preset="tiny")


def test_preset_refuses_more_trials_than_images():
    preset = get_preset("tiny")
    per_subject = preset.n_sessions * preset.n_runs * preset.trials_per_category
    assert preset.images_seen_per_category == per_subject <= preset.images_per_category
    with pytest.raises(ValueError, match="raise images_per_category"):
        get_preset("tiny", images_per_category=per_subject - 1)


def test_each_image_once_per_subject_and_shared_across_subjects():
    """ds005589's design: no image twice for a subject, images recur across subjects."""
    model = TwinModel.from_preset("default", 0)
    preset = model.preset
    seen = [np.concatenate([model.run_images(s, e, r) for e in range(preset.n_sessions)
                            for r in range(preset.n_runs)])
            for s in range(len(preset.subjects))]
    for ids in seen:
        assert len(np.unique(ids)) == len(ids) == preset.n_trials // len(preset.subjects)
    counts = np.bincount(np.concatenate(seen), minlength=len(model.specs))
    # 13 subjects x 25 of 125 images a category: each image 2.6 times on average
    assert counts.max() > 1 and counts.mean() == pytest.approx(2.6)
    assert (counts > 0).mean() > 0.85  # most of the pool is shown to someone


def test_runs_are_balanced_like_the_published_data():
    model = TwinModel.from_preset("default", 0)
    ids = model.run_images(3, 2, 0)
    categories = [model.specs[i].category for i in ids]
    assert len(ids) == 100
    assert all(categories.count(c) == 5 for c in CATEGORIES)
    assert categories != sorted(categories)  # pseudo-random order


def test_captions_are_unique_and_state_category_and_attributes():
    specs = sample_specs(np.random.default_rng(0), 20)
    captions = [s.caption for s in specs]
    assert len(set(captions)) == len(captions)
    spec = specs[0]
    assert spec.colour in spec.caption and spec.size in spec.caption and spec.background in spec.caption


def test_ground_truth_is_rebuilt_from_the_manifest(small_root):
    model = load_twin_model(small_root)
    data = load_dataset(small_root, subjects="complete")
    X, image_ids = model.run_trials(1, 2, 0)
    rows = np.flatnonzero((data.trials.subject == "sub-03") & (data.trials.session == "ses-03"))
    np.testing.assert_array_equal(data.get_trials(rows), X)
    np.testing.assert_array_equal(data.trials.image_id.iloc[rows], image_ids)


def test_eeg_carries_category_signal_that_the_true_means_decode():
    """Nearest true class mean beats 5 % chance by far: there is signal to find.

    The decoder knows the session's bad channels (left out) and removes each
    trial's channel means (offsets and drift), as the ideal observer would.
    """
    model = TwinModel.from_preset(get_preset("tiny", trials_per_category=10, images_per_category=50), 0)
    pool_y = np.array([CATEGORIES.index(s.category) for s in model.specs])
    hits = []
    for subject in range(6):
        X, ids = model.run_trials(subject, 0, 0)
        y = pool_y[ids]
        good = ~model.bad_channels[subject, 0]
        evoked = model.evoked(subject, 0, np.arange(len(model.specs)))
        means = np.stack([evoked[pool_y == c].mean(0) for c in range(20)])

        def centred(Z):
            return Z[..., good, :] - Z[..., good, :].mean(axis=-1, keepdims=True)

        distance = ((centred(X)[:, None] - centred(means)[None]) ** 2).sum(axis=(2, 3))
        hits.append(distance.argmin(1) == y)
    # 1,200 trials: 8.5 % correct is p < 1e-7 under chance (5 %)
    assert np.concatenate(hits).mean() > 0.085


def test_subject_and_session_structure():
    """Subjects share much of their heads and templates (version 4), but not all."""
    model = TwinModel.from_preset("tiny", 0)
    preset = model.preset
    # Heads are alike but not the same: the subjects' forward models share the
    # template head (1 - subject_own_topography of each pattern's variance).
    flat = model.subject_mixing.reshape(len(preset.subjects), -1)
    corr = np.corrcoef(flat - flat.mean(axis=1, keepdims=True))[np.triu_indices(len(flat), 1)]
    assert 0.5 < corr.mean() < 0.9 and corr.max() < 0.95
    # Some subjects are much noisier than others.
    assert model.noise_level.max() / model.noise_level.min() > 1.5
    # Every session has its own bad channels and its own share of the templates.
    bad = model.bad_channels
    assert (bad.sum(axis=2) == preset.session_bad_channels).all()
    assert len({tuple(np.flatnonzero(b)) for b in bad[0]}) == preset.n_sessions
    amp = model.generator_amplitude[0, :, 1:21].reshape(preset.n_sessions, -1)
    assert 0.3 < np.corrcoef(amp)[0, 1] < 0.9
    # Trials jitter in latency and amplitude: the same image twice differs.
    rng = np.random.default_rng(0)
    jitter, amplitude = model.trial_variability(rng, 2000)
    assert jitter.std() == pytest.approx(preset.trial_jitter_seconds, rel=0.1)
    assert amplitude.mean() == pytest.approx(1.0, abs=0.05)
    two = model.evoked(0, 0, np.array([3, 3]), jitter[:2], amplitude[:2])
    assert not np.allclose(two[0], two[1])


def test_noise_has_alpha_peak_and_is_not_white():
    model = TwinModel.from_preset("default", 0)
    noise = model.noise(np.random.default_rng(0), 200)
    occipital = model.alpha_pattern > 0
    freqs, power = welch(noise[:, occipital].mean(1), fs=model.preset.sfreq, nperseg=250, axis=-1)
    power = power.mean(0)
    alpha = power[(freqs >= 8) & (freqs <= 12)].mean()
    assert alpha > 1.5 * power[(freqs >= 16) & (freqs <= 24)].mean()
    assert power[(freqs >= 2) & (freqs <= 6)].mean() > power[(freqs >= 60) & (freqs <= 90)].mean()


def test_quantile_noise_levels_give_every_cohort_the_same_spread():
    """subject_noise_quantiles: the same set of noise levels for every seed, each subject's
    drawn at random; off, the independent draws of older twins."""
    from statistics import NormalDist

    from eegkit.twin.generator import get_preset

    preset = get_preset("default", subject_noise_quantiles=True)
    n_sub = len(preset.subjects)
    expected = np.exp(preset.subject_noise_sd * np.array(
        [NormalDist().inv_cdf((i + 0.5) / n_sub) for i in range(n_sub)]))
    levels = [TwinModel.from_preset(preset, seed).noise_level for seed in (0, 1)]
    for level in levels:
        np.testing.assert_allclose(np.sort(level), expected / np.median(expected), rtol=1e-12)
    assert not np.array_equal(levels[0], levels[1])  # the same levels, to other subjects
    independent = [TwinModel.from_preset(get_preset("default", subject_noise_quantiles=False),
                                         seed).noise_level for seed in (0, 1)]
    assert not np.allclose(np.sort(independent[0]), np.sort(independent[1]))


def test_ground_truth_of_another_generator_version_is_refused(tmp_path):
    """A twin written by another generator version cannot be rebuilt: it says so and how to fix it."""
    import json

    make_twin(tmp_path / "old", preset="tiny", seed=3, progress=False, subjects=("sub-02",))
    manifest = tmp_path / "old" / "eegkit_twin.json"
    content = json.loads(manifest.read_text())
    content["generator_version"] = 3
    manifest.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"eegkit_twin.json: written by twin generator version 3.*make_twin"):
        load_twin_model(tmp_path / "old")
