
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from eegkit import load_dataset  # noqa: E402
from eegkit.data.explore import (  # noqa: E402
    class_balance,
    grand_average,
    peak_time,
    power_spectrum,
    trial_counts,
)


def test_counts_balance_and_grand_average(tiny_root):
    data = load_dataset(tiny_root)
    counts = trial_counts(data.trials)
    assert counts.shape == (13, 5) and (counts.to_numpy() == 20).all()
    balance = class_balance(data.trials)
    assert (balance["n_trials"] == 65).all()
    rows = np.arange(0, 300)
    erp = grand_average(data, rows, chunk=64)
    y = data.trials.category_id.to_numpy()[rows]
    X = data.get_trials(rows)
    np.testing.assert_allclose(erp[y[0]], X[y == y[0]].mean(0), rtol=1e-5, atol=1e-4)


def test_peak_time_and_spectrum(tiny_root):
    wave = -np.exp(-0.5 * ((np.arange(500) / 1000 - 0.17) / 0.01) ** 2)
    assert peak_time(wave, 1000.0) == pytest.approx(0.17)
    with pytest.raises(ValueError, match="outside the epoch"):
        peak_time(wave[:100], 1000.0)
    data = load_dataset(tiny_root)
    freqs, psd = power_spectrum(data, np.arange(50))
    assert psd.shape == (122, len(freqs)) and freqs[1] == pytest.approx(data.sfreq / data.n_times)


