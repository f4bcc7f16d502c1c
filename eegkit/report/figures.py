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


def save_figure(fig, name: str, out_dir: str | os.PathLike = "figures", dpi: int = FIGURE_DPI) -> Path:
    """Save a matplotlib figure as ``<out_dir>/<name>.png``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        File stem, e.g. ``"01_grand_average_erp"`` (notebook number first).
    out_dir : path-like, default="figures"
    dpi : int, default=150
    """
    return atomic_write(
        Path(out_dir) / f"{name}.png",
        lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"),
    )


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
