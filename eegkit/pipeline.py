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

Paths never depend on the folder the command runs in: every path parameter
(``data_dir``, ``figures_dir``, ``checkpoint_dir``) reaches a notebook as an absolute
path. Relative paths in a parameters file are taken from the repository root, those
given with ``-p`` from the current folder (as any path on a command line), and a
notebook's own default (``"../figures"``) from ``notebooks/``; ``~`` is expanded.
A parameter that no notebook declares is an error naming the closest valid one.

Command line (``python -m eegkit.pipeline <command> --help`` lists each one's options)::

    python -m eegkit.pipeline run                                  # make report (report/params.yaml)
    python -m eegkit.pipeline run --force
    python -m eegkit.pipeline run --only 01 -p data_dir=/path/to/ds005589
    python -m eegkit.pipeline report                               # the two PDFs
    python -m eegkit.pipeline report --figures other/ --out other/
    python -m eegkit.pipeline render --params tests/notebook_params.yaml \\
        --out build/nbmake                                           # make test
"""

from __future__ import annotations

import argparse
import ast
import difflib
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
#: The checkout: relative paths of a parameters file are taken from here.
REPO_DIR = CODE_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
#: Defaults of the command line: the parameters of ``make report`` and its folders.
DEFAULT_PARAMS = REPO_DIR / "report" / "params.yaml"
DEFAULT_OUT = REPO_DIR / "build" / "notebooks"
DEFAULT_FIGURES = REPO_DIR / "figures"
DEFAULT_REPORT_DIR = REPO_DIR / "report"
PATH_PARAMETERS = ("data_dir", "figures_dir", "checkpoint_dir")
#: Parameters :func:`run` reads itself (to find the data and the device), whichever
#: notebooks declare them.
RUN_PARAMETERS = ("data_dir", "twin_preset", "seed", "device", "figures_dir")
#: The record of successful runs, in the folder of the executed notebooks.
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
#: Written into the figures folder by every run; the reports read it.
RUN_INFO_NAME = "run_info.json"
#: eegkit modules no notebook imports: editing them re-runs no notebook.
#: run_info status of a notebook that stopped because the data has no captions.
CAPTIONS_WAIT = "waits for captions (the data has no captions.txt or images)"
#: Modules no notebook imports (the PDF builder, the docs tables and this runner), by path
#: in the package.
CODE_NOT_FINGERPRINTED = ("report/pdf.py", "report/docs_tables.py", "pipeline.py")
#: A quoted results-file name in a notebook's source (``"02_results.csv"``).
_RESULT_NAME = re.compile(r"""["'](\d\d_[\w.-]+)["']""")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the failing cell and the
    executed copy that holds the traceback."""


class ParameterError(ValueError):
    """A parameters file, a ``-p`` or an ``--only`` names something no notebook has."""


def list_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``NN_*.py``), in order."""
    return sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.py"))


def _absolute(value, base_dir: str | Path):
    """A path parameter as an absolute path string: ``~`` expanded, a relative path
    taken from ``base_dir``; empty values (``""``: not given) are kept."""
    if not value:
        return value
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else (Path(base_dir) / path).resolve())


def read_params(path: str | Path, base_dir: str | Path = REPO_DIR) -> dict:
    """Read a parameters file and make its path parameters absolute.

    The file maps parameter names to values; a ``notebooks`` key may hold
    per-notebook overrides keyed by notebook stem (``01_data_exploration``).

    Parameters
    ----------
    path : path-like
        The YAML file.
    base_dir : path-like, default=the repository root
        Relative ``data_dir``, ``figures_dir`` and ``checkpoint_dir`` values are taken
        from here (not from the current folder); ``~`` is expanded.

    Returns
    -------
    params : dict
    """
    params = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(params, dict):
        raise ParameterError(f"{path} must map parameter names to values, not hold a "
                             f"{type(params).__name__}")
    for section in [params, *(params.get("notebooks") or {}).values()]:
        for key in PATH_PARAMETERS:
            if section and section.get(key):
                section[key] = _absolute(section[key], base_dir)
    return params


def parse_overrides(pairs: list[str], base_dir: str | Path | None = None) -> dict:
    """Parameters given on the command line as ``NAME=VALUE`` (``-p``).

    Values are read as YAML (``2``, ``[wang_fc, eegnet]``, ``true``), except path
    parameters, which stay strings and are made absolute from ``base_dir`` (default:
    the current folder), ``~`` expanded. An empty value is ``""``.
    """
    base_dir = Path.cwd() if base_dir is None else base_dir
    overrides = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"-p {pair!r}: write -p NAME=VALUE, e.g. "
                                 "-p data_dir=/path/to/ds005589 or -p max_epochs=2")
        if name in PATH_PARAMETERS:
            overrides[name] = _absolute(text.strip(), base_dir)
        else:
            value = yaml.safe_load(text) if text.strip() else ""
            overrides[name] = "" if value is None else value
    return overrides


def _closest(name: str, valid) -> str:
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "valid names: " + ", ".join(sorted(valid))


def declared_by_notebook(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> dict[str, set[str]]:
    """Each numbered notebook's declared parameters, keyed by stem."""
    return {py.stem: declared_parameters(jupytext.read(py)) for py in list_notebooks(notebooks_dir)}


def check_params(params: dict, notebooks_dir: str | Path = NOTEBOOKS_DIR,
                 source: str = "parameters") -> None:
    """Refuse a parameter that no notebook declares, so a typo cannot be ignored.

    Valid top-level names are those declared in the ``parameters`` cell of at least
    one notebook (and those :func:`run` reads itself: :data:`RUN_PARAMETERS`); keys
    of the ``notebooks`` section must be notebook stems, and their names must be
    declared by that notebook.

    Parameters
    ----------
    params : dict
        As from :func:`read_params` or :func:`parse_overrides`.
    notebooks_dir : path-like, default=the repository's ``notebooks/``
    source : str, default="parameters"
        Where the parameters came from (a file name, ``"-p"``), for the message.

    Raises
    ------
    ParameterError
        Naming the unknown key and the closest valid one.
    """
    declared = declared_by_notebook(notebooks_dir)
    every = set(RUN_PARAMETERS).union(*declared.values())
    for name in params:
        if name != "notebooks" and name not in every:
            raise ParameterError(
                f"{source}: unknown parameter {name!r}; {_closest(name, every)} "
                "(a parameter must be declared in the parameters cell of a notebook)")
    sections = params.get("notebooks") or {}
    if not isinstance(sections, dict):
        raise ParameterError(f"{source}: 'notebooks' must map notebook names to parameters")
    for stem, section in sections.items():
        if stem not in declared:
            raise ParameterError(f"{source}: 'notebooks' has a section {stem!r}, which is "
                                 f"no notebook; {_closest(str(stem), declared)}")
        for name in section or {}:
            if name not in declared[stem]:
                raise ParameterError(
                    f"{source}: unknown parameter {name!r} for {stem}; "
                    f"{_closest(name, declared[stem])} (declared in its parameters cell)")


def select_notebooks(only: list[str] | None = None,
                     notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks ``--only`` names, in their order; all when ``only`` is empty.

    Each name is a number (``1``, ``01``), a stem or its start (``01_data``), or a
    file name (``01_data_exploration.py``).

    Raises
    ------
    ParameterError
        A name matches no notebook; the message lists them.
    """
    notebooks = list_notebooks(notebooks_dir)
    if not only:
        return notebooks
    chosen: set[Path] = set()
    for name in only:
        key = Path(str(name)).name.removesuffix(".ipynb").removesuffix(".py")
        key = key.removesuffix(".executed")
        prefix = f"{int(key):02d}_" if key.isdigit() else key
        matches = [p for p in notebooks if p.stem == key or p.stem.startswith(prefix)]
        if not key or not matches:
            raise ParameterError(
                f"--only {name!r} matches no notebook in {notebooks_dir}; give a number "
                f"(01) or a name: {', '.join(p.stem for p in notebooks)}")
        chosen.update(matches)
    return [p for p in notebooks if p in chosen]


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


def _parameter_defaults(notebook: nbformat.NotebookNode) -> dict:
    """The literal values assigned in the cell tagged ``parameters``."""
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            defaults = {}
            for node in ast.parse(cell.source).body:
                if (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)):
                    try:
                        defaults[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
            return defaults
    return {}


def _chosen_parameters(notebook: nbformat.NotebookNode, stem: str, params: dict,
                       folder: str | Path = NOTEBOOKS_DIR) -> dict:
    """The parameters injected into one notebook: declared by it, overrides applied,
    and its own relative path defaults made absolute from its ``folder``."""
    merged = {k: v for k, v in params.items() if k != "notebooks"}
    merged.update((params.get("notebooks") or {}).get(stem) or {})
    declared = declared_parameters(notebook)
    chosen = {k: v for k, v in merged.items() if k in declared}
    defaults = _parameter_defaults(notebook)
    for key in PATH_PARAMETERS:
        if key in declared and key not in chosen and defaults.get(key):
            chosen[key] = _absolute(defaults[key], folder)
    return chosen


def to_ipynb(py_path: str | Path, params: dict | None = None) -> nbformat.NotebookNode:
    """Convert a py:percent notebook and inject the parameters it declares."""
    notebook = jupytext.read(py_path)
    for cell in notebook.cells:  # papermill looks up tags on every cell
        cell.metadata.setdefault("tags", [])
    notebook.metadata.setdefault("papermill", {})
    notebook.metadata.setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}
    )
    chosen = _chosen_parameters(notebook, Path(py_path).stem, params or {}, Path(py_path).parent)
    if chosen:
        notebook = parameterize_notebook(notebook, chosen)
    return notebook


def render(params: dict, out_dir: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write every numbered notebook as a parameterised ``.ipynb`` into ``out_dir``.

    Raises
    ------
    ParameterError
        ``params`` has a name no notebook declares (see :func:`check_params`).
    """
    check_params(params, notebooks_dir)
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
    chosen = _chosen_parameters(jupytext.read(py_path), py_path.stem, params, py_path.parent)
    upstream = hashlib.sha256()
    for path in upstream_files(py_path, params.get("figures_dir") or DEFAULT_FIGURES):
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
        Notebooks to consider, by number (``01``) or name (see :func:`select_notebooks`);
        the others are left alone.
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
    ParameterError
        ``params`` has a name no notebook declares, or ``only`` matches no notebook.
    """
    from eegkit import __version__
    from eegkit.twin import resolve_data_root

    check_params(params, notebooks_dir)
    selected = select_notebooks(only, notebooks_dir)
    params = dict(params)
    params["data_dir"] = str(resolve_data_root(
        params.get("data_dir") or None,
        twin_preset=params.get("twin_preset", "default"),
        seed=params.get("seed", 0),
    ))
    data_root = Path(params["data_dir"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = Path(params.get("figures_dir") or DEFAULT_FIGURES)
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
    for py_path in selected:
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
                f"{exc.source}\n--- the executed copy, with the traceback and every output "
                f"up to the failure: {executed.resolve()}"
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


def _shown(path: Path) -> str:
    """A default path for ``--help``: relative to the repository when inside it."""
    try:
        return f"{path.relative_to(REPO_DIR).as_posix()}/ of this checkout"
    except ValueError:
        return str(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eegkit.pipeline", description=__doc__,
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


if __name__ == "__main__":
    sys.exit(main())
