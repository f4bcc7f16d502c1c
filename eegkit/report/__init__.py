"""The report stage: figures and tables into ``figures/``, and the PDFs built from them.

* :mod:`~eegkit.report.figures`: :func:`save_figure` and :func:`save_table`, the one
  way notebooks write results;
* :mod:`~eegkit.report.plots`: every figure of the notebooks;
* :mod:`~eegkit.report.pdf`: the midterm and final PDFs (typst), built only from
  ``figures/``.
"""

from eegkit.report.figures import FIGURE_DPI, SYNTHETIC_MARK, save_figure, save_table

__all__ = ["FIGURE_DPI", "SYNTHETIC_MARK", "save_figure", "save_table"]
