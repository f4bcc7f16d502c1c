import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from eegkit.report.figures import SYNTHETIC_MARK, save_figure, save_table  # noqa: E402


def test_save_figure_and_table(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = save_figure(fig, "01_line", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv, md = save_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "01_t", tmp_path)
    assert pd.read_csv(csv).shape == (2, 2) and "| a |" in md.read_text().replace("|   a |", "| a |")
    assert sorted(os.listdir(tmp_path)) == ["01_line.png", "01_t.csv", "01_t.md"]  # no temp files left


def test_figures_of_the_twin_carry_the_synthetic_mark(tmp_path):
    import numpy as np

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.legend(["line"], loc="outside lower center")
    plain = plt.imread(save_figure(fig, "01_real", tmp_path))
    marked = plt.imread(save_figure(fig, "01_twin", tmp_path, synthetic=True))
    assert marked.shape[1] == plain.shape[1] and marked.shape[0] > plain.shape[0]
    assert np.array_equal(marked[: plain.shape[0]], plain[..., :3])  # the figure is untouched
    strip = marked[plain.shape[0]:, :, :3]
    red = (strip[..., 0] > 0.5) & (strip[..., 1] < 0.4) & (strip[..., 2] < 0.4)
    assert red.sum() > 50  # the red words of SYNTHETIC_MARK
    assert "synthetic data" in SYNTHETIC_MARK and not fig.texts


def test_every_notebook_marks_its_figures_when_the_data_is_the_twin():
    from pathlib import Path

    for notebook in sorted(Path(__file__).parents[1].joinpath("notebooks").glob("0*.py")):
        source = notebook.read_text()
        calls = source.count("save_figure(")
        assert calls > 0 and source.count("synthetic=synthetic") == calls, notebook.name
        assert "synthetic = data.twin is not None" in source, notebook.name
