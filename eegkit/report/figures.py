"""Write report figures and tables into one folder, atomically and consistently named.

Every notebook saves through :func:`save_figure` and :func:`save_table`, so names,
resolution and formats are the same everywhere and a half-written file never
replaces a good one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from eegkit._io import atomic_write

FIGURE_DPI = 150
#: The mark :func:`save_figure` puts on figures of the synthetic twin's data.
SYNTHETIC_MARK = "synthetic data (eegkit twin), not recordings of people"
_MARK_GID = "eegkit-synthetic-mark"


def save_figure(fig, name: str, out_dir: str | os.PathLike = "figures", dpi: int = FIGURE_DPI,
                synthetic: bool = False) -> Path:
    """Save a matplotlib figure as ``<out_dir>/<name>.png``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        File stem, e.g. ``"01_grand_average_erp"`` (notebook number first).
    out_dir : path-like, default="figures"
    dpi : int, default=150
    synthetic : bool, default=False
        Whether the figure shows the synthetic twin's data (notebooks pass
        ``data.twin is not None``). Then a small red :data:`SYNTHETIC_MARK` is
        written under the figure's bottom right corner, so the figure cannot be
        taken for one of recordings of people once it leaves the report.
    """
    if synthetic:
        _mark_synthetic(fig)
    return atomic_write(
        Path(out_dir) / f"{name}.png",
        lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"),
    )


def _mark_synthetic(fig) -> None:
    """Write :data:`SYNTHETIC_MARK` just below everything drawn on ``fig`` (once)."""
    if any(text.get_gid() == _MARK_GID for text in fig.texts):
        return
    fig.draw_without_rendering()  # run the layout engine, so that legends are in place
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    fig.text(box.x1 / fig.get_figwidth(), box.y0 / fig.get_figheight(), SYNTHETIC_MARK,
             ha="right", va="top", fontsize=8, style="italic", color="#a61b1b", gid=_MARK_GID)


def save_table(table: pd.DataFrame, name: str, out_dir: str | os.PathLike = "figures") -> tuple[Path, Path]:
    """Save a table as ``<name>.csv`` (for code) and ``<name>.md`` (for reading).

    Returns
    -------
    csv_path, md_path : Path
    """
    out_dir = Path(out_dir)
    csv = atomic_write(out_dir / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=False))
    md = atomic_write(
        out_dir / f"{name}.md",
        lambda tmp: Path(tmp).write_text(table.to_markdown(index=False) + "\n"),
    )
    return csv, md
