"""The command line, ``python -m eegkit.pipeline run|render|report``: its options
and the exit status (2 for a parameter error, 1 for a failed notebook or report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eegkit.pipeline.params import (
    DEFAULT_FIGURES,
    DEFAULT_OUT,
    DEFAULT_PARAMS,
    DEFAULT_REPORT_DIR,
    REPO_DIR,
    ParameterError,
    check_params,
    parse_overrides,
    read_params,
    render,
)
from eegkit.pipeline.runner import NotebookFailed, run


def _shown(path: Path) -> str:
    """A default path for ``--help``: relative to the repository when inside it."""
    try:
        return f"{path.relative_to(REPO_DIR).as_posix()}/ of this checkout"
    except ValueError:
        return str(path)


def _parser() -> argparse.ArgumentParser:
    from eegkit import pipeline  # its docstring is the help text

    parser = argparse.ArgumentParser(prog="python -m eegkit.pipeline", description=pipeline.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,render,report}")
    run_cmd = commands.add_parser(
        "run", help="run the notebooks with papermill, skipping those up to date",
        description="Run the numbered notebooks with papermill, in order, skipping those "
        "up to date (see the module docstring of eegkit.pipeline).")
    render_cmd = commands.add_parser(
        "render", help="write the notebooks as parameterised .ipynb (for nbmake)",
        description="Write every numbered notebook as a parameterised .ipynb, without "
        "running it.")
    report_cmd = commands.add_parser(
        "report", help="build report/midterm.pdf and report/final.pdf from the figures",
        description="Build the PDFs from the results folder (nothing is run).")
    params_file = _shown(DEFAULT_PARAMS).replace("/ of", " of")
    for command in (run_cmd, render_cmd):
        command.add_argument(
            "--params", default=str(DEFAULT_PARAMS), metavar="FILE",
            help=f"YAML file of notebook parameters; its relative paths are taken from the "
            f"repository root (default: {params_file})")
        command.add_argument(
            "-p", "--param", dest="overrides", action="append", default=[],
            metavar="NAME=VALUE",
            help="set one parameter for every notebook that declares it, over --params; "
            "repeatable; the value is read as YAML (2, [a, b], true); a relative path is "
            "taken from the current folder (default: none)")
        command.add_argument(
            "--out", default=str(DEFAULT_OUT), metavar="DIR",
            help="folder of the generated .ipynb files" +
            (", the executed copies and the run manifest" if command is run_cmd else "") +
            f" (default: {_shown(DEFAULT_OUT)})")
    run_cmd.add_argument(
        "--only", nargs="+", metavar="NOTEBOOK",
        help="run only these notebooks: a number (01 or 1) or a name (01_data_exploration); "
        "an unknown one is an error (default: all)")
    run_cmd.add_argument("--force", action="store_true",
                         help="run every notebook, even those up to date (default: off)")
    report_cmd.add_argument(
        "--params", default=str(DEFAULT_PARAMS), metavar="FILE",
        help=f"parameters file whose figures_dir is the results folder (default: {params_file})")
    report_cmd.add_argument(
        "--figures", metavar="DIR",
        help="the results folder (default: figures_dir of --params, else "
        f"{_shown(DEFAULT_FIGURES)})")
    report_cmd.add_argument(
        "--report-dir", default=str(DEFAULT_REPORT_DIR), metavar="DIR",
        help=f"folder of the typst sources (default: {_shown(DEFAULT_REPORT_DIR)})")
    report_cmd.add_argument(
        "--out", metavar="DIR",
        help="folder the PDFs are written to, so a build from other results need not "
        "overwrite report/*.pdf (default: --report-dir)")
    report_cmd.add_argument("--reports", nargs="+", choices=["midterm", "final"],
                            help="which reports (default: midterm final)")
    report_cmd.add_argument("--page-png", metavar="FILE",
                            help="also render page 1 of the last report built to this PNG "
                            "file (default: none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        params = read_params(args.params)
        check_params(params, source=args.params)
        if args.command == "report":
            return _report(args, params)
        overrides = parse_overrides(args.overrides)
        check_params(overrides, source="-p")
        params.update(overrides)
        if args.command == "render":
            for path in render(params, args.out):
                print(f"[eegkit] wrote {path}")
            return 0
        run(params, args.out, only=args.only, force=args.force)
    except (ParameterError, OSError) as exc:
        print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace, params: dict) -> int:
    from eegkit.report.pdf import ReportBuildError, build_reports, render_page

    figures = args.figures or params.get("figures_dir") or str(DEFAULT_FIGURES)
    try:
        built = build_reports(figures, args.report_dir, args.reports, out_dir=args.out)
        if args.page_png:
            render_page(built[-1].name, args.page_png, figures, args.report_dir)
            print(f"[eegkit] wrote {args.page_png} (page 1 of {built[-1].pdf})")
    except ReportBuildError as exc:
        print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0
