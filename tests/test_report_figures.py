import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from eegkit.report.figures import save_figure, save_table  # noqa: E402


def test_save_figure_and_table(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = save_figure(fig, "01_line", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv, md = save_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "01_t", tmp_path)
    assert pd.read_csv(csv).shape == (2, 2) and "| a |" in md.read_text().replace("|   a |", "| a |")
    assert sorted(os.listdir(tmp_path)) == ["01_line.png", "01_t.csv", "01_t.md"]  # no temp files left
