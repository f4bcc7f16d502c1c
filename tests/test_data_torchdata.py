import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from eegkit import load_dataset
from eegkit.data.splits import make_split
from eegkit.data.torchdata import (
    ChannelNormalizer,
    EEGTrialDataset,
    RecordingNormalizer,
    SplitDatasets,
    recording_index,
)


def test_dataset_yields_float32_trials_and_labels(tiny_root):
    data = load_dataset(tiny_root)
    split = make_split(data.trials)
    norm = ChannelNormalizer.fit(data, split.train)
    dataset = EEGTrialDataset(data, split.test, norm)
    assert len(dataset) == len(split.test)
    batch = next(iter(DataLoader(dataset, batch_size=8)))
    assert batch["X"].shape == (8, 122, 125) and batch["X"].dtype == torch.float32
    row = split.test[0]
    assert batch["row"][0] == row
    assert batch["y"][0] == data.trials.category_id.iloc[row]
    assert batch["subject"][0] == data.trials.subject_id.iloc[row]
    assert batch["caption_id"][0] == data.trials.caption_id.iloc[row]
    expected = norm.transform(data.get_trials([row]))[0]
    np.testing.assert_allclose(batch["X"][0].numpy(), expected, rtol=1e-6)


def test_normalizer_uses_training_statistics_only(tiny_root):
    data = load_dataset(tiny_root)
    split = make_split(data.trials)
    norm = ChannelNormalizer.fit(data, split.train, chunk=100)
    X = data.get_trials(split.train).astype(np.float64)
    np.testing.assert_allclose(norm.mean, X.mean(axis=(0, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.std, X.std(axis=(0, 2)), rtol=1e-4)
    z = norm.transform(X)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0, atol=1e-4)
    # the test split's statistics differ (session drift), so they did not enter
    test_mean = data.get_trials(split.test).mean(axis=(0, 2))
    assert not np.allclose(norm.mean, test_mean, atol=1e-3)


def _old_items(data, rows, indices, norm):
    """The items as EEGTrialDataset built them before explicit reads: through the maps."""
    picked = np.asarray(rows)[indices]
    X = np.stack([data.runs[data.trials.run_index.iloc[r]][data.trials.trial.iloc[r]] for r in picked])
    X = torch.from_numpy(np.ascontiguousarray(norm.transform(X), dtype=np.float32))
    table = data.trials.iloc[picked]
    return [
        {"X": X[i], "row": torch.tensor(r, dtype=torch.int64),
         "subject": torch.tensor(table.subject_id.iloc[i]), "y": torch.tensor(table.category_id.iloc[i]),
         "caption_id": torch.tensor(table.caption_id.iloc[i]),
         "image_id": torch.tensor(table.image_id.iloc[i])}
        for i, r in enumerate(picked)
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_explicit_reads_return_exactly_the_arrays_of_the_memory_map(tiny_root, dtype):
    data = load_dataset(tiny_root)
    split = make_split(data.trials)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(data))[:300]
    expected = np.stack([data.runs[r][t] for r, t in
                         zip(data.trials.run_index.iloc[rows], data.trials.trial.iloc[rows])])
    np.testing.assert_array_equal(data.get_trials(rows), expected)
    # the batches of training: same keys, dtypes, shapes and bits as before
    stats = ChannelNormalizer.fit(data, split.train)
    norm = ChannelNormalizer(stats.mean.astype(dtype), stats.std.astype(dtype))
    dataset = EEGTrialDataset(data, split.train, norm)
    indices = rng.permutation(len(dataset))[:64].tolist()
    for got, want in zip(dataset.__getitems__(indices), _old_items(data, split.train, indices, norm)):
        assert list(got) == list(want)
        for key in want:
            assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
            assert torch.equal(got[key], want[key]), key
    assert torch.equal(dataset[indices[0]]["X"], _old_items(data, split.train, indices[:1], norm)[0]["X"])


def test_explicit_reads_convert_other_dtypes_and_in_memory_runs(broken_copy):
    npy = next(broken_copy.glob("sub-02/ses-01/*_1000Hz.npy"))
    X64 = np.load(npy).astype(">f8")  # big-endian float64 on disk
    np.save(npy, X64)
    data = load_dataset(broken_copy, subjects=["sub-02"], sessions=[1])
    assert data.runs[0].dtype == np.dtype(">f8")
    np.testing.assert_array_equal(data.get_trials([3, 0, 19]), X64[[3, 0, 19]].astype(np.float32))
    data.runs[0] = np.asarray(data.runs[0][:])  # an in-memory run is indexed, not read
    np.testing.assert_array_equal(data.get_trials([5, 2]), X64[[5, 2]].astype(np.float32))


def test_reading_every_trial_leaves_no_mapped_pages(tiny_root):
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("needs Linux /proc")

    def rss_file_mb():
        return int(re.search(r"RssFile:\s+(\d+)", status.read_text()).group(1)) / 1024

    before = rss_file_mb()
    data = load_dataset(tiny_root)  # checks every value, so reads every trial once
    split = make_split(data.trials)
    norm = ChannelNormalizer.fit(data, split.train)
    for _ in DataLoader(EEGTrialDataset(data, split.train, norm), batch_size=64,
                        collate_fn=lambda items: None):
        pass
    data.get_trials(np.arange(len(data)))
    size_mb = sum(run.nbytes for run in data.runs) / 1024**2
    # through the maps, RssFile would grow by the whole twin (about 76 MB)
    assert rss_file_mb() - before < 0.1 * size_mb


def test_fit_equals_float64_numpy_statistics(tiny_root):
    data = load_dataset(tiny_root)
    split = make_split(data.trials)
    X = np.stack([np.load(f.npy) for f in data.run_files])
    X = X.reshape(-1, data.n_chans, data.n_times)[split.train].astype(np.float64)
    mean, std = X.mean(axis=(0, 2)), X.std(axis=(0, 2))
    for chunk in (1, 100, 10_000):
        norm = ChannelNormalizer.fit(data, np.random.default_rng(chunk).permutation(split.train),
                                     chunk=chunk)
        assert norm.mean.dtype == norm.std.dtype == np.float32
        np.testing.assert_array_max_ulp(norm.mean, mean.astype(np.float32), maxulp=1)
        np.testing.assert_array_max_ulp(norm.std, std.astype(np.float32), maxulp=1)
    with pytest.raises(ValueError, match="chunk=0"):
        ChannelNormalizer.fit(data, split.train, chunk=0)


def test_dataset_pickles_without_its_open_files(small_root):
    data = load_dataset(small_root, subjects="complete", sessions=[1])
    first = data.get_trials([0, 5])  # opens the runs' files
    assert data._readers
    copy = pickle.loads(pickle.dumps(data))
    assert copy._readers == {}
    np.testing.assert_array_equal(copy.get_trials([0, 5]), first)


def _recording_stats(X):
    return X.mean(axis=(0, 2)), X.std(axis=(0, 2))


def _recordings(data, split, normalization, parts=("train", "val", "test")):
    """Each recording's normalised items and raw trials (float64) in each part."""
    sets = SplitDatasets.from_split(data, split, normalization)
    recording = recording_index(data.trials)
    for part in parts:
        dataset = getattr(sets, part)
        X = torch.stack([item["X"] for item in dataset.__getitems__(list(range(len(dataset))))]).double().numpy()
        raw = data.get_trials(dataset.rows).astype(np.float64)
        for rec in np.unique(recording[dataset.rows]):
            mine = recording[dataset.rows] == rec
            yield X[mine], raw[mine]


@pytest.mark.parametrize("protocol", ["session", "cross_subject"])
def test_recording_normalisation_zscores_each_recording_with_its_own_trials(tiny_root, protocol):
    data = load_dataset(tiny_root)
    for X, raw in _recordings(data, make_split(data.trials, protocol), "recording"):
        mean, std = _recording_stats(X)
        np.testing.assert_allclose(mean, 0, atol=1e-4)
        np.testing.assert_allclose(std, 1, atol=1e-4)
        # exactly (x - mean) / std with the recording's own float64 statistics
        raw_mean, raw_std = _recording_stats(raw)
        np.testing.assert_allclose(X, (raw - raw_mean[:, None]) / raw_std[:, None], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("protocol", ["session", "cross_subject"])
def test_evoked_normalisation_removes_each_recordings_mean_trial(tiny_root, protocol):
    data = load_dataset(tiny_root)
    for X, raw in _recordings(data, make_split(data.trials, protocol), "recording_evoked", ("train", "test")):
        # the recording's own mean trial and the std of what is left, in float64
        residual = raw - raw.mean(axis=0)
        std = residual.std(axis=(0, 2))
        np.testing.assert_allclose(X, residual / std[:, None], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(X.std(axis=(0, 2)), 1, atol=1e-4)


def test_recording_normaliser_sees_only_the_rows_it_is_fitted_on(tiny_root):
    data = load_dataset(tiny_root)
    split = make_split(data.trials)
    norm = RecordingNormalizer.fit(data, split.test)
    # the training recordings are not in the test part: using it on them is an error, not a silent pooled scale
    with pytest.raises(ValueError, match="not in the trials this normaliser was fitted on"):
        norm.normalize_batch(data.get_trials(split.train[:2]), split.train[:2])
    # half of a recording's trials give statistics of that half only
    rec = recording_index(data.trials)
    first = np.nonzero(rec == rec[split.test[0]])[0]
    half = first[: len(first) // 2]
    mean, std = _recording_stats(data.get_trials(half).astype(np.float64))
    fitted = RecordingNormalizer.fit(data, half)
    np.testing.assert_allclose(fitted.mean[0], mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fitted.std[0], std, rtol=1e-5)


def test_unknown_normalization_is_refused(tiny_root):
    data = load_dataset(tiny_root)
    with pytest.raises(ValueError, match="normalization='session': choose one of"):
        SplitDatasets.from_split(data, make_split(data.trials), "session")
