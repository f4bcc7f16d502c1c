"""Run the numbered notebooks: with papermill for the report, as .ipynb for nbmake.

The notebooks live as jupytext ``py:percent`` files (``notebooks/NN_topic.py``); the
``.ipynb`` files Jupyter, papermill and nbmake need are generated from them into
``build/`` and never committed, so the two cannot drift apart.

Command line::

    python -m eegkit.pipeline run --params report/params.yaml      # make report
    python -m eegkit.pipeline render --params tests/notebook_params.yaml \\
        --out build/nbmake                                           # make test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml
from papermill.exceptions import PapermillExecutionError
from papermill.parameterize import parameterize_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
PATH_PARAMETERS = ("data_dir", "figures_dir", "checkpoint_dir")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the failing cell."""


def list_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``NN_*.py``), in order."""
    return sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.py"))


def read_params(path: str | Path) -> dict:
    """Read a parameters file and make its paths absolute (relative to the cwd).

    The file maps parameter names to values; a ``notebooks`` key may hold
    per-notebook overrides keyed by notebook stem (``01_data_exploration``).
    """
    params = yaml.safe_load(Path(path).read_text()) or {}
    for section in [params, *params.get("notebooks", {}).values()]:
        for key in PATH_PARAMETERS:
            if section.get(key):
                section[key] = str(Path(section[key]).resolve())
    return params


def declared_parameters(notebook: nbformat.NotebookNode) -> set[str]:
    """Names assigned in the cell tagged ``parameters``."""
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            names = set()
            for line in cell.source.splitlines():
                name = line.split("=", 1)[0].strip()
                if "=" in line and name.isidentifier():
                    names.add(name)
            return names
    return set()


def to_ipynb(py_path: str | Path, params: dict | None = None) -> nbformat.NotebookNode:
    """Convert a py:percent notebook and inject the parameters it declares."""
    notebook = jupytext.read(py_path)
    for cell in notebook.cells:  # papermill looks up tags on every cell
        cell.metadata.setdefault("tags", [])
    notebook.metadata.setdefault("papermill", {})
    notebook.metadata.setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}
    )
    params = params or {}
    stem = Path(py_path).stem
    merged = {k: v for k, v in params.items() if k != "notebooks"}
    merged.update(params.get("notebooks", {}).get(stem, {}))
    declared = declared_parameters(notebook)
    chosen = {k: v for k, v in merged.items() if k in declared}
    if chosen:
        notebook = parameterize_notebook(notebook, chosen)
    return notebook


def render(params: dict, out_dir: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write every numbered notebook as a parameterised ``.ipynb`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.ipynb"):
        stale.unlink()
    written = []
    for py_path in list_notebooks(notebooks_dir):
        path = out_dir / f"{py_path.stem}.ipynb"
        nbformat.write(to_ipynb(py_path, params), path)
        written.append(path)
    return written


def run(params: dict, out_dir: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR,
        only: list[str] | None = None) -> None:
    """Execute the numbered notebooks in order with papermill.

    The data is resolved first (the twin is written here, with its own progress bar,
    if no real data is configured), then each notebook runs with that data path. A
    progress line per notebook gives its name, the time it took and the files it
    wrote; the first failure stops the run with the notebook and cell named.
    """
    from eegkit.data import resolve_data_root

    params = dict(params)
    params["data_dir"] = str(resolve_data_root(
        params.get("data_dir") or None,
        twin_preset=params.get("twin_preset", "default"),
        seed=params.get("seed", 0),
    ))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = Path(params.get("figures_dir", "figures"))
    start_all = time.time()
    for py_path in list_notebooks(notebooks_dir):
        if only and py_path.stem not in only:
            continue
        source = out_dir / f"{py_path.stem}.ipynb"
        nbformat.write(to_ipynb(py_path, params), source)
        started = time.time()
        print(f"[eegkit] {py_path.name} ...", flush=True)
        try:
            papermill.execute_notebook(source, out_dir / f"{py_path.stem}.executed.ipynb",
                                       progress_bar=False, cwd=str(py_path.parent))
        except PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{py_path.name} failed in cell {exc.cell_index} (execution count "
                f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n--- cell source ---\n"
                f"{exc.source}"
            ) from exc
        wrote = sorted(p.name for p in figures.glob("*") if p.stat().st_mtime >= started)
        print(f"[eegkit] {py_path.name} done in {time.time() - started:.0f} s, wrote "
              f"{len(wrote)} files: {', '.join(wrote)}", flush=True)
    print(f"[eegkit] all notebooks done in {time.time() - start_all:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eegkit.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "render"])
    parser.add_argument("--params", required=True, help="YAML file of notebook parameters")
    parser.add_argument("--out", default="build/notebooks", help="folder for the .ipynb files")
    parser.add_argument("--only", nargs="*", help="notebook stems to run (default: all)")
    args = parser.parse_args(argv)
    params = read_params(args.params)
    if args.command == "render":
        for path in render(params, args.out):
            print(f"[eegkit] wrote {path}")
        return 0
    try:
        run(params, args.out, only=args.only)
    except NotebookFailed as exc:
        print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
