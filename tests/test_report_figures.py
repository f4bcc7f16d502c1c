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


def test_learning_curves_draw_an_extra_panel_for_the_histories_that_have_it():
    import pandas as pd

    from eegkit.report import plots

    epochs = [1, 2, 3]
    base = {"epoch": epochs, "train_loss": [3, 2, 1], "val_loss": [3, 2.5, 2.4], "train_acc": [0.1, 0.2, 0.3],
            "val_acc": [0.1, 0.1, 0.1]}
    new = pd.DataFrame({**base, "train_category_acc": [0.2, 0.4, 0.6], "val_category_acc": [0.2, 0.25, 0.3]})
    old = pd.DataFrame(base)  # e.g. a run reused from a checkpoint written before the column existed
    fig = plots.plot_learning_curves({"new": new, "old": old}, chance=None,
                                     extra_panels={"category_acc": "in-batch category accuracy"})
    _, acc, category = fig.axes
    assert category.get_ylabel() == "in-batch category accuracy"
    assert len(acc.lines) == 4 and len(category.lines) == 2  # training and validation of "new" only
    assert list(category.lines[1].get_ydata()) == [0.2, 0.25, 0.3]
    # no empty panel when no history has the extra columns (every run reused from old checkpoints)
    assert len(plots.plot_learning_curves({"old": old}, extra_panels={"category_acc": "x"}).axes) == 2
