"""Build the midterm and final report PDFs from the results the notebooks wrote.

The text of the reports is ours and lives in ``report/`` as typst sources
(``midterm.typ``, ``final.typ``, their ``sections/`` and the helpers of ``lib.typ``).
They take every number from the CSV tables of the results folder (``figures/``),
include its PNG figures, and read ``figures/run_info.json`` (written by
:func:`eegkit.pipeline.run`) for the first page: which data, when, which device,
which commit. So a re-run of the notebooks on other data rewrites the reports.

A notebook that has not been run yet (none of its ``NN_*`` files exists) does not
break the build: its section says plainly that the notebook has not been run, and a
single missing file is replaced by a note naming it. The builder reports which
notebooks' sections are empty. typst compiles in-process (the ``typst`` package), so
no LaTeX is needed.

Command line::

    python -m eegkit.pipeline report --params report/params.yaml
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import typst

from eegkit._checks import check_option
from eegkit._io import atomic_write

REPORT_DIR = Path(__file__).resolve().parents[2] / "report"
#: Each report: its typst source in the report folder and the notebooks it covers.
REPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "midterm": ("midterm.typ", ("01", "02", "04")),
    "final": ("final.typ", ("01", "02", "03", "04", "05")),
}
#: The label of the metadata each file reference in the typst sources records.
FILE_LABEL = "<eegkit-file>"


class ReportBuildError(RuntimeError):
    """A report could not be built; the message names the file and the fix."""


@dataclass
class BuiltReport:
    """What :func:`build_report` made.

    Attributes
    ----------
    name : str
        ``"midterm"`` or ``"final"``.
    pdf : Path
        The PDF written.
    n_pages : int
    referenced : list of dict
        Every results file the text refers to, in order of first use:
        ``{"file", "kind", "present"}`` (kind: figure, table, value, run info).
    not_run : list of str
        Numbers of the report's notebooks that wrote no file (``["04", "05"]``);
        their sections say that they have not been run.
    """

    name: str
    pdf: Path
    n_pages: int
    referenced: list[dict] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Referenced files that are not in the results folder."""
        return [ref["file"] for ref in self.referenced if not ref["present"]]


def shown_path(path: str | os.PathLike | None, repo: str | os.PathLike = REPORT_DIR.parent) -> str:
    """A path as the reports print it: relative to the repository when inside it, else
    only its last part (``data/twin-default-seed0`` or ``ds005589``), never the
    machine's absolute path."""
    if not path:
        return "?"
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(repo).resolve()).as_posix()
    except ValueError:
        return path.name or path.as_posix()


def _sys_inputs(figures_dir: Path, root: Path) -> dict[str, str]:
    names = sorted(p.name for p in figures_dir.iterdir()
                   if p.is_file() and not p.name.startswith("."))
    data_root = None
    if (figures_dir / "run_info.json").is_file():
        try:
            data_root = json.loads((figures_dir / "run_info.json").read_text()).get("data_root")
        except ValueError:
            pass
    return {
        "figures": "/" + figures_dir.relative_to(root).as_posix().strip("/") + "/",
        "figures-name": figures_dir.name,
        "files": json.dumps(names),
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data-root": shown_path(data_root),
    }


def _prepare(name: str, figures_dir: str | os.PathLike, report_dir: str | os.PathLike
             ) -> tuple[Path, Path, dict[str, str]]:
    """Check the inputs; return the source, the typst root and the sys.inputs."""
    try:
        check_option("name", name, sorted(REPORTS))
    except ValueError as exc:
        raise ReportBuildError(str(exc)) from exc
    report_dir = Path(report_dir).resolve()
    figures_dir = Path(figures_dir).resolve()
    source = report_dir / REPORTS[name][0]
    if not source.is_file():
        raise ReportBuildError(
            f"{source} does not exist; report_dir must be the folder of the typst "
            f"sources (report/ of the repository)"
        )
    if not figures_dir.is_dir():
        raise ReportBuildError(
            f"the results folder {figures_dir} does not exist; run the notebooks first "
            f"(make report, or python -m eegkit.pipeline run --params report/params.yaml)"
        )
    # typst reads only below its root: the common folder of sources and results.
    root = Path(os.path.commonpath([report_dir, figures_dir]))
    return source, root, _sys_inputs(figures_dir, root)


def _typst_error(source: Path, exc: Exception) -> ReportBuildError:
    details = [str(getattr(exc, "message", exc))]
    diagnostic = getattr(exc, "diagnostic", "")
    if diagnostic:
        details.append(diagnostic)
    details += [f"hint: {hint}" for hint in getattr(exc, "hints", None) or []]
    return ReportBuildError(f"typst could not compile {source}:\n" + "\n".join(details))


def build_report(
    name: str,
    figures_dir: str | os.PathLike = "figures",
    report_dir: str | os.PathLike = REPORT_DIR,
    out: str | os.PathLike | None = None,
) -> BuiltReport:
    """Compile one report to PDF.

    Parameters
    ----------
    name : {"midterm", "final"}
    figures_dir : path-like, default="figures"
        The results folder the notebooks wrote (tables, figures, run_info.json).
    report_dir : path-like, default=the repository's ``report/``
        The folder of the typst sources.
    out : path-like, optional
        The PDF to write; default ``<report_dir>/<name>.pdf``. Written atomically.

    Returns
    -------
    BuiltReport

    Raises
    ------
    ReportBuildError
        Unknown report, missing sources or results folder, or a typst error (its
        message and hints included).
    """
    from pypdf import PdfReader

    source, root, inputs = _prepare(name, figures_dir, report_dir)
    out = Path(out) if out is not None else source.with_suffix(".pdf")
    try:
        pdf = typst.compile(source, root=root, sys_inputs=inputs, ignore_system_fonts=True)
        records = typst.query(source, FILE_LABEL, root=root, sys_inputs=inputs,
                              ignore_system_fonts=True)
    except typst.TypstError as exc:
        raise _typst_error(source, exc) from exc
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(pdf))
    referenced: dict[str, dict] = {}
    for record in json.loads(records):
        referenced.setdefault(record["value"]["file"], record["value"])
    files = json.loads(inputs["files"])
    not_run = [nb for nb in REPORTS[name][1] if not any(f.startswith(f"{nb}_") for f in files)]
    n_pages = len(PdfReader(out).pages)
    return BuiltReport(name=name, pdf=out, n_pages=n_pages,
                       referenced=list(referenced.values()), not_run=not_run)


def build_reports(
    figures_dir: str | os.PathLike = "figures",
    report_dir: str | os.PathLike = REPORT_DIR,
    names: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    verbose: bool = True,
) -> list[BuiltReport]:
    """Build several reports (default: midterm and final) as ``<name>.pdf``.

    Parameters
    ----------
    figures_dir : path-like, default="figures"
    report_dir : path-like, default=the repository's ``report/``
    names : sequence of {"midterm", "final"}, optional
        Default: every report of :data:`REPORTS`.
    out_dir : path-like, optional
        Where the PDFs go; default ``report_dir``.
    verbose : bool, default=True
        Print one line per PDF: pages, notebooks not run, files missing.

    Returns
    -------
    list of BuiltReport
    """
    built = []
    for name in names or list(REPORTS):
        out = None if out_dir is None else Path(out_dir) / f"{name}.pdf"
        result = build_report(name, figures_dir, report_dir, out)
        built.append(result)
        if verbose:
            line = f"[eegkit] wrote {result.pdf} ({result.n_pages} pages"
            if result.not_run:
                which = "notebook" + ("s" if len(result.not_run) > 1 else "")
                line += f"; {which} {', '.join(result.not_run)} not run yet, the sections say so"
            others = [f for f in result.missing if f[:2] not in result.not_run]
            if others:
                line += f"; missing: {', '.join(others)}"
            print(line + ")", flush=True)
    return built


def render_page(
    name: str,
    out: str | os.PathLike,
    figures_dir: str | os.PathLike = "figures",
    report_dir: str | os.PathLike = REPORT_DIR,
    page: int = 1,
    ppi: float = 110.0,
) -> Path:
    """Render one page of a report as PNG (for the README).

    Parameters
    ----------
    name : {"midterm", "final"}
    out : path-like
        The PNG to write (atomically).
    figures_dir, report_dir : path-like
        As for :func:`build_report`.
    page : int, default=1
        1-based page number.
    ppi : float, default=110.0
        Pixels per inch.

    Returns
    -------
    Path
    """
    source, root, inputs = _prepare(name, figures_dir, report_dir)
    try:
        pages = typst.compile(source, root=root, sys_inputs=inputs, format="png", ppi=ppi,
                              ignore_system_fonts=True)
    except typst.TypstError as exc:
        raise _typst_error(source, exc) from exc
    pages = [pages] if isinstance(pages, bytes) else pages
    if not 1 <= page <= len(pages):
        raise ReportBuildError(f"{name} has {len(pages)} pages; page={page} does not exist")
    return atomic_write(out, lambda tmp: Path(tmp).write_bytes(pages[page - 1]))
