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
_MARK_POINTS = 8  # font size of the mark
_MARK_COLOUR = (166, 27, 27)  # the reports' warning red


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
        ``data.twin is not None``). Then :data:`SYNTHETIC_MARK` is written in small
        red letters in a strip added under the image, so that the figure cannot be
        taken for one of recordings of people once it leaves the report.
    """
    def write(tmp):
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        if synthetic:
            _add_mark(tmp, dpi)

    return atomic_write(Path(out_dir) / f"{name}.png", write)


def _add_mark(png: str | os.PathLike, dpi: int) -> None:
    """Append a strip with :data:`SYNTHETIC_MARK`, right-aligned, under a PNG.

    Done on the image rather than the figure: a figure legend placed outside the
    axes would move to wherever the figure's lower edge ends up.
    """
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    font_file = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                                  style="italic"))
    with Image.open(png) as image:
        image = image.convert("RGB")
    size = round(_MARK_POINTS * dpi / 72)
    font = ImageFont.truetype(font_file, size)
    if font.getlength(SYNTHETIC_MARK) > image.width - 8:  # a narrow figure: smaller letters
        font = ImageFont.truetype(font_file, max(6, int(size * (image.width - 8)
                                                     / font.getlength(SYNTHETIC_MARK))))
    strip = round(1.8 * _MARK_POINTS * dpi / 72)
    marked = Image.new("RGB", (image.width, image.height + strip), "white")
    marked.paste(image, (0, 0))
    ImageDraw.Draw(marked).text((image.width - 4, image.height + strip // 2), SYNTHETIC_MARK,
                                font=font, fill=_MARK_COLOUR, anchor="rm")
    marked.save(png, format="PNG")


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
