"""Run the numbered notebooks: with papermill for the report, as .ipynb for nbmake.

The notebooks live as jupytext ``py:percent`` files (``notebooks/NN_topic.py``); the
``.ipynb`` files Jupyter, papermill and nbmake need are generated from them into
``build/`` and never committed, so the two cannot drift apart.

A run skips a notebook that is up to date: its source, the parameters injected into
it, the ``eegkit`` code, the input data and the earlier notebooks' results it reads are
what they were at its last successful run (recorded in ``<out>/manifest.json``) and
the files it wrote then still exist.
``--force`` runs everything. Each run also writes ``<figures_dir>/run_info.json``
(data, device, git commit, and when each notebook last ran), which the reports read.

Command line::

    python -m eegkit.pipeline run --params report/params.yaml      # make report
    python -m eegkit.pipeline run --params report/params.yaml --force
    python -m eegkit.pipeline report --params report/params.yaml   # the two PDFs
    python -m eegkit.pipeline render --params tests/notebook_params.yaml \\
        --out build/nbmake                                           # make test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml
from papermill.exceptions import PapermillExecutionError
from papermill.parameterize import parameterize_notebook
from traitlets.config import Config

CODE_DIR = Path(__file__).resolve().parent
NOTEBOOKS_DIR = CODE_DIR.parent / "notebooks"
PATH_PARAMETERS = ("data_dir", "figures_dir", "checkpoint_dir")
#: The record of successful runs, in the folder of the executed notebooks.
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
#: Written into the figures folder by every run; the reports read it.
RUN_INFO_NAME = "run_info.json"
#: eegkit modules no notebook imports: editing them re-runs no notebook.
#: run_info status of a notebook that stopped because the data has no captions.
CAPTIONS_WAIT = "waits for captions (the data has no captions.txt or images)"
#: Modules no notebook imports (the PDF builder and this runner), by path in the package.
CODE_NOT_FINGERPRINTED = ("report/pdf.py", "pipeline.py")
#: A quoted results-file name in a notebook's source (``"02_results.csv"``).
_RESULT_NAME = re.compile(r"""["'](\d\d_[\w.-]+)["']""")


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


def _chosen_parameters(notebook: nbformat.NotebookNode, stem: str, params: dict) -> dict:
    """The parameters injected into one notebook: declared by it, overrides applied."""
    merged = {k: v for k, v in params.items() if k != "notebooks"}
    merged.update(params.get("notebooks", {}).get(stem, {}))
    declared = declared_parameters(notebook)
    return {k: v for k, v in merged.items() if k in declared}


def to_ipynb(py_path: str | Path, params: dict | None = None) -> nbformat.NotebookNode:
    """Convert a py:percent notebook and inject the parameters it declares."""
    notebook = jupytext.read(py_path)
    for cell in notebook.cells:  # papermill looks up tags on every cell
        cell.metadata.setdefault("tags", [])
    notebook.metadata.setdefault("papermill", {})
    notebook.metadata.setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}
    )
    chosen = _chosen_parameters(notebook, Path(py_path).stem, params or {})
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_fingerprint(code_dir: str | Path = CODE_DIR) -> str:
    """Hash of the ``eegkit`` sources: every ``.py`` file, by name and content.

    Modules listed in :data:`CODE_NOT_FINGERPRINTED` (the PDF builder and the
    pipeline) are left out, since no notebook imports them.

    Parameters
    ----------
    code_dir : path-like, default=the installed ``eegkit`` package folder

    Returns
    -------
    digest : str
        SHA-256 hex digest.
    """
    code_dir = Path(code_dir)
    digest = hashlib.sha256()
    for path in sorted(code_dir.rglob("*.py")):
        relative = path.relative_to(code_dir).as_posix()
        if relative in CODE_NOT_FINGERPRINTED or "__pycache__" in path.parts:
            continue
        digest.update(relative.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def data_fingerprint(root: str | Path) -> str:
    """A cheap fingerprint of the input data: no data file is read.

    It hashes the twin's ``eegkit_twin.json`` (when there is one) and a listing of
    every file under ``root``: relative path, size in bytes and modification time in
    ns. Folders whose name starts with ``.`` (``.git``, ``.datalad``) are not
    listed; a dangling link (git-annex content not fetched) is listed by the link.

    Parameters
    ----------
    root : path-like
        The dataset root (real data or a twin).

    Returns
    -------
    digest : str
        SHA-256 hex digest; a missing root gives the digest of an empty listing.
    """
    from eegkit.data.loading import TWIN_MANIFEST

    root = Path(root)
    digest = hashlib.sha256()
    manifest = root / TWIN_MANIFEST
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                stat = path.lstat()
            line = f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
            digest.update(line.encode())
    return digest.hexdigest()


def upstream_files(py_path: str | Path, figures_dir: str | Path) -> list[Path]:
    """Results of other notebooks that a notebook reads, found by name in its source.

    A quoted name that starts with another notebook's number (``"02_results.csv"``
    in notebook 03) names a file of the figures folder; a name without extension
    stands for every file with that stem.

    Parameters
    ----------
    py_path : path-like
        The notebook's ``py:percent`` source.
    figures_dir : path-like
        The results folder.

    Returns
    -------
    paths : list of Path
        Sorted; those that do not exist (yet) are included.
    """
    py_path, figures_dir = Path(py_path), Path(figures_dir)
    own = py_path.name[:3]
    found: set[Path] = set()
    for name in _RESULT_NAME.findall(py_path.read_text()):
        if name.startswith(own):
            continue
        if Path(name).suffix:
            found.add(figures_dir / name)
        else:
            stems = sorted(figures_dir.glob(f"{name}.*")) if figures_dir.is_dir() else []
            found.update(stems or [figures_dir / name])
    return sorted(found)


def notebook_inputs(py_path: str | Path, params: dict, code_hash: str,
                    data_hash: str) -> dict[str, str]:
    """What a notebook's results depend on, as hashes.

    Parameters
    ----------
    py_path : path-like
        The notebook's ``py:percent`` source.
    params : dict
        The run's parameters (as from :func:`read_params`, ``data_dir`` resolved);
        only those the notebook declares, with its overrides, count.
    code_hash : str
        :func:`code_fingerprint` of the ``eegkit`` package.
    data_hash : str
        :func:`data_fingerprint` of the data root.

    Returns
    -------
    inputs : dict
        ``{"source", "params", "code", "data", "upstream"}``, each a SHA-256 hex
        digest; ``upstream`` covers the content of :func:`upstream_files`.
    """
    py_path = Path(py_path)
    chosen = _chosen_parameters(jupytext.read(py_path), py_path.stem, params)
    upstream = hashlib.sha256()
    for path in upstream_files(py_path, params.get("figures_dir", "figures")):
        content = path.read_bytes() if path.is_file() else b"(missing)"
        upstream.update(path.name.encode() + b"\0" + _sha256(content).encode() + b"\0")
    return {
        "source": _sha256(py_path.read_bytes()),
        "params": _sha256(json.dumps(chosen, sort_keys=True, default=str).encode()),
        "code": code_hash,
        "data": data_hash,
        "upstream": upstream.hexdigest(),
    }


_CHANGED = {
    "source": "notebook source changed",
    "params": "parameters changed",
    "code": "eegkit code changed",
    "data": "input data changed",
    "upstream": "results of an earlier notebook it reads changed",
}


def is_up_to_date(record: dict | None, inputs: dict[str, str],
                  force: bool = False) -> tuple[bool, str]:
    """Decide whether a notebook can be skipped.

    Parameters
    ----------
    record : dict or None
        The notebook's entry in the manifest (``inputs``, ``outputs``, ...), None
        when it never ran successfully.
    inputs : dict
        Its current :func:`notebook_inputs`.
    force : bool, default=False
        Never skip.

    Returns
    -------
    up_to_date : bool
    reason : str
        Why it must run (``"parameters changed"``, ``"output missing: ..."``), or
        ``"up to date"``.
    """
    if force:
        return False, "forced"
    if not record:
        return False, "no record of a successful run"
    recorded = record.get("inputs", {})
    for key, why in _CHANGED.items():
        if recorded.get(key) != inputs.get(key):
            return False, why
    for output in record.get("outputs", []):
        if not Path(output).is_file():
            return False, f"output missing: {output}"
    return True, "up to date"


def read_manifest(path: str | Path) -> dict:
    """The manifest of successful runs; an empty one when missing or unreadable."""
    path = Path(path)
    empty = {"version": MANIFEST_VERSION, "notebooks": {}}
    if not path.is_file():
        return empty
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path} is unreadable ({exc}); every notebook will run", stacklevel=2)
        return empty
    if (manifest.get("version") != MANIFEST_VERSION
            or not isinstance(manifest.get("notebooks"), dict)):
        return empty
    return manifest


def _write_json(path: Path, content: dict) -> None:
    from eegkit._io import atomic_write

    text = json.dumps(content, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe_device(device: str = "auto") -> str:
    """The device a ``device`` parameter selects here, in words (``"cuda (NVIDIA H100 ...)"``)."""
    import torch

    kind = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else str(device)
    if kind.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(kind).index or 0
        return f"{kind} ({torch.cuda.get_device_name(index)})"
    if kind == "cpu":
        return f"cpu ({os.cpu_count()} cores)"
    return kind


def git_commit(repo: str | Path = CODE_DIR.parent) -> dict:
    """The checked-out commit: ``{"commit": sha or None, "dirty": bool or None}``.

    ``dirty`` says whether tracked files differ from the commit. Read-only: git is
    run with ``--no-optional-locks`` so the index is not rewritten.
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), *args],
                                  capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _data_description(root: Path) -> dict:
    from eegkit.data.loading import TWIN_MANIFEST

    twin = None
    if (root / TWIN_MANIFEST).is_file():
        try:
            twin = json.loads((root / TWIN_MANIFEST).read_text())
        except ValueError:
            twin = {}
    return {
        "data_root": str(root),
        "is_twin": twin is not None,
        "twin_preset": None if twin is None else twin.get("preset"),
        "twin_seed": None if twin is None else twin.get("seed"),
    }


def _notebook_summary(record: dict, status: str) -> dict:
    keys = ("finished", "seconds", "device", "commit", "dirty", "data_root")
    return {"status": status, **{k: record.get(k) for k in keys}}


def _new_outputs(figures: Path, started: float) -> list[Path]:
    if not figures.is_dir():
        return []
    return sorted(p for p in figures.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name != RUN_INFO_NAME
                  and p.stat().st_mtime >= started)


def run(params: dict, out_dir: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR,
        only: list[str] | None = None, force: bool = False,
        code_dir: str | Path = CODE_DIR) -> dict:
    """Execute the numbered notebooks in order with papermill, skipping those up to date.

    The data is resolved first (the twin is written here, with its own progress bar,
    if no real data is configured), then each notebook runs with that data path. A
    notebook is skipped when :func:`is_up_to_date` says so against the manifest
    ``<out_dir>/manifest.json``, which is rewritten atomically after each notebook
    that succeeds (a notebook's entry is dropped before it runs, so a failed run
    leaves none). A progress line per notebook gives its name, the time it took and
    the files it wrote, or ``skipped (up to date)``; the first failure stops the run
    with the notebook and cell named. ``<figures_dir>/run_info.json`` is written at
    the start, after each notebook and at the end.

    Parameters
    ----------
    params : dict
        Notebook parameters, as from :func:`read_params`.
    out_dir : path-like
        Folder of the generated and executed ``.ipynb`` files and the manifest.
    notebooks_dir : path-like, default=the repository's ``notebooks/``
    only : list of str, optional
        Notebook stems to consider; the others are left alone.
    force : bool, default=False
        Run every notebook, up to date or not.
    code_dir : path-like, default=the ``eegkit`` package
        The code whose change re-runs every notebook.

    Returns
    -------
    run_info : dict
        What was written to ``run_info.json``.

    Raises
    ------
    NotebookFailed
        A notebook raised; earlier notebooks' outputs and records are kept.
    """
    from eegkit import __version__
    from eegkit.twin import resolve_data_root

    params = dict(params)
    params["data_dir"] = str(resolve_data_root(
        params.get("data_dir") or None,
        twin_preset=params.get("twin_preset", "default"),
        seed=params.get("seed", 0),
    ))
    data_root = Path(params["data_dir"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = Path(params.get("figures_dir", "figures"))
    manifest_path = out_dir / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    code_hash = code_fingerprint(code_dir)
    data_hash = data_fingerprint(data_root)
    device = describe_device(params.get("device", "auto"))
    commit = git_commit()
    start_all = time.time()
    info = {
        "eegkit_version": __version__,
        **_data_description(data_root),
        "device": device,
        **commit,
        "started": _now(),
        "finished": None,
        "status": "running",
        "forced": force,
        "notebooks": {stem: _notebook_summary(record, "not run this time")
                      for stem, record in manifest["notebooks"].items()},
    }
    _write_json(figures / RUN_INFO_NAME, info)
    n_ran = n_skipped = n_waiting = 0
    for py_path in list_notebooks(notebooks_dir):
        if only and py_path.stem not in only:
            continue
        inputs = notebook_inputs(py_path, params, code_hash, data_hash)
        record = manifest["notebooks"].get(py_path.stem)
        fresh, reason = is_up_to_date(record, inputs, force=force)
        if fresh:
            n_skipped += 1
            info["notebooks"][py_path.stem] = _notebook_summary(record, "skipped (up to date)")
            print(f"[eegkit] {py_path.name} skipped (up to date; last run {record['finished']})",
                  flush=True)
            continue
        previous = manifest["notebooks"].pop(py_path.stem, None)
        _write_json(manifest_path, manifest)
        source = out_dir / f"{py_path.stem}.ipynb"
        executed = out_dir / f"{py_path.stem}.executed.ipynb"
        nbformat.write(to_ipynb(py_path, params), source)
        started = time.time()
        print(f"[eegkit] {py_path.name} ({reason}) ...", flush=True)
        try:
            # The kernel talks to papermill over local (ipc) sockets rather than TCP:
            # nothing leaves the machine, and ipykernel does not warn that TCP is
            # unencrypted at every run.
            papermill.execute_notebook(source, executed, progress_bar=False,
                                       cwd=str(py_path.parent),
                                       config=Config(KernelManager={"transport": "ipc"}))
        except PapermillExecutionError as exc:
            if exc.ename == "CaptionsRequired":  # a copy without captions: Task 2 waits, the rest runs
                _remove_outputs(previous, figures)
                info["notebooks"][py_path.stem] = {"status": CAPTIONS_WAIT, "data_root": str(data_root)}
                _write_json(figures / RUN_INFO_NAME, info)
                n_waiting += 1
                print(f"[eegkit] {py_path.name} waits for captions: {exc.evalue}", flush=True)
                continue
            info.update(status=f"failed in {py_path.name}", finished=_now())
            info["notebooks"][py_path.stem] = {"status": f"failed in cell {exc.cell_index}"}
            _write_json(figures / RUN_INFO_NAME, info)
            raise NotebookFailed(
                f"{py_path.name} failed in cell {exc.cell_index} (execution count "
                f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n--- cell source ---\n"
                f"{exc.source}"
            ) from exc
        seconds = time.time() - started
        wrote = _new_outputs(figures, started)
        record = {
            "inputs": inputs,
            "outputs": [str(p.resolve()) for p in [*wrote, executed]],
            "finished": _now(),
            "seconds": round(seconds, 1),
            "device": device,
            "data_root": str(data_root),
            **commit,
        }
        manifest["notebooks"][py_path.stem] = record
        _write_json(manifest_path, manifest)
        info["notebooks"][py_path.stem] = _notebook_summary(record, "ran")
        _write_json(figures / RUN_INFO_NAME, info)
        n_ran += 1
        print(f"[eegkit] {py_path.name} done in {seconds:.0f} s, wrote "
              f"{len(wrote)} files: {', '.join(p.name for p in wrote)}", flush=True)
    info.update(status="complete", finished=_now())
    _write_json(figures / RUN_INFO_NAME, info)
    waiting = f", {n_waiting} waiting for captions" if n_waiting else ""
    print(f"[eegkit] all notebooks done in {time.time() - start_all:.0f} s "
          f"({n_ran} ran, {n_skipped} skipped as up to date{waiting})", flush=True)
    return info


def _remove_outputs(record: dict | None, figures: Path) -> None:
    """Delete the result files a notebook's previous run wrote into ``figures``, so that a
    report built now cannot show results of other data in its place."""
    for output in (record or {}).get("outputs", []):
        path = Path(output)
        if path.parent.resolve() == figures.resolve():
            path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eegkit.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "render", "report"],
                        help="run the notebooks, render them as .ipynb, or build the PDFs")
    parser.add_argument("--params", help="YAML file of notebook parameters (run, render; "
                        "report reads figures_dir from it)")
    parser.add_argument("--out", default="build/notebooks", help="folder for the .ipynb files")
    parser.add_argument("--only", nargs="*", help="notebook stems to run (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="run every notebook, even those up to date")
    parser.add_argument("--figures", help="report: the results folder (default: figures_dir "
                        "of --params, else figures)")
    parser.add_argument("--report-dir", default="report",
                        help="report: folder of the typst sources and the PDFs")
    parser.add_argument("--reports", nargs="*", help="report: which (default: midterm final)")
    parser.add_argument("--page-png", help="report: also render page 1 of the last report "
                        "built to this PNG file")
    args = parser.parse_args(argv)
    if args.command == "report":
        from eegkit.report.pdf import ReportBuildError, build_reports, render_page

        figures = args.figures
        if figures is None:
            figures = read_params(args.params).get("figures_dir") if args.params else None
        try:
            built = build_reports(figures or "figures", args.report_dir, args.reports)
            if args.page_png:
                render_page(built[-1].name, args.page_png, figures or "figures",
                            args.report_dir)
                print(f"[eegkit] wrote {args.page_png} (page 1 of {built[-1].pdf})")
        except ReportBuildError as exc:
            print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.params:
        parser.error(f"{args.command} needs --params (e.g. report/params.yaml)")
    params = read_params(args.params)
    if args.command == "render":
        for path in render(params, args.out):
            print(f"[eegkit] wrote {path}")
        return 0
    try:
        run(params, args.out, only=args.only, force=args.force)
    except NotebookFailed as exc:
        print(f"[eegkit] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
