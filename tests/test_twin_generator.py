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


def test_twin_refuses_to_overwrite(tmp_path, small_root):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_twin(small_root, preset="tiny")


def test_preset_refuses_more_trials_than_images():
    with pytest.raises(ValueError, match="raise images_per_category"):
        get_preset("tiny", trials_per_category=5)


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
    """Nearest true class mean beats 5 % chance by far: there is signal to find."""
    model = TwinModel.from_preset(get_preset("tiny", trials_per_category=10, images_per_category=10), 0)
    X, ids = model.run_trials(0, 0, 0)
    y = np.array([CATEGORIES.index(model.specs[i].category) for i in ids])
    pool_y = np.array([CATEGORIES.index(s.category) for s in model.specs])
    evoked = model.evoked(0, 0, np.arange(len(model.specs)))
    means = np.stack([evoked[pool_y == c].mean(0) for c in range(20)])
    distance = ((X[:, None] - means[None]) ** 2).sum(axis=(2, 3))
    # 200 trials: 12 % correct is p < 1e-4 under chance
    assert (distance.argmin(1) == y).mean() > 0.12


def test_noise_has_alpha_peak_and_is_not_white():
    model = TwinModel.from_preset("default", 0)
    noise = model.noise(np.random.default_rng(0), 200)
    occipital = model.alpha_pattern > 0
    freqs, power = welch(noise[:, occipital].mean(1), fs=model.preset.sfreq, nperseg=250, axis=-1)
    power = power.mean(0)
    alpha = power[(freqs >= 8) & (freqs <= 12)].mean()
    assert alpha > 1.5 * power[(freqs >= 16) & (freqs <= 24)].mean()
    assert power[(freqs >= 2) & (freqs <= 6)].mean() > power[(freqs >= 60) & (freqs <= 90)].mean()
