import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from eegkit import load_dataset, resolve_data_root  # noqa: E402
from eegkit.explore import class_balance, grand_average, peak_time, power_spectrum, trial_counts  # noqa: E402
from eegkit.report import atomic_write, save_figure, save_table  # noqa: E402


def test_save_figure_and_table(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = save_figure(fig, "01_line", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv, md = save_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "01_t", tmp_path)
    assert pd.read_csv(csv).shape == (2, 2) and "| a |" in md.read_text().replace("|   a |", "| a |")
    assert sorted(os.listdir(tmp_path)) == ["01_line.png", "01_t.csv", "01_t.md"]  # no temp files left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "result.csv"
    path.write_text("good")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "good" and os.listdir(tmp_path) == ["result.csv"]


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


def test_resolve_data_root_prefers_argument_then_environment(tmp_path, monkeypatch, small_root):
    monkeypatch.setenv("EEGKIT_DATA", str(small_root))
    assert resolve_data_root("/given") == tmp_path.__class__("/given")
    assert resolve_data_root("") == small_root
    monkeypatch.delenv("EEGKIT_DATA")
    root = resolve_data_root(twin_preset="tiny", seed=4, cache_dir=tmp_path)
    assert root == tmp_path / "twin-tiny-seed4" and (root / "eegkit_twin.json").is_file()
    mtime = (root / "captions.txt").stat().st_mtime
    assert resolve_data_root(twin_preset="tiny", seed=4, cache_dir=tmp_path) == root
    assert (root / "captions.txt").stat().st_mtime == mtime  # reused, not rewritten


def test_resolve_data_root_rewrites_a_twin_of_an_older_generator(tmp_path):
    import json

    root = resolve_data_root(twin_preset="tiny", seed=5, cache_dir=tmp_path)
    manifest = root / "eegkit_twin.json"
    content = json.loads(manifest.read_text())
    content["generator_version"] = -1
    manifest.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match="generator version -1"):
        resolve_data_root(twin_preset="tiny", seed=5, cache_dir=tmp_path)
    assert json.loads(manifest.read_text())["generator_version"] != -1


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "x.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(mask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_open_dataset_and_banner(small_root):
    from eegkit import data_banner, open_dataset

    data = open_dataset(str(small_root), subjects="complete")
    assert len(data) == 200
    assert "synthetic twin" in data_banner(data) and "not from people" in data_banner(data)
