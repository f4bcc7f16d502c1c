import numpy as np
import torch
from torch.utils.data import DataLoader

from eegkit import load_dataset
from eegkit.splits import make_split
from eegkit.torchdata import ChannelNormalizer, EEGTrialDataset


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
