"""Running the notebooks with papermill, in order, skipping those up to date, and the
record of the run (``<figures_dir>/run_info.json``) the reports read.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError
from traitlets.config import Config

from eegkit.pipeline.fingerprint import (
    MANIFEST_NAME,
    code_fingerprint,
    data_fingerprint,
    is_up_to_date,
    notebook_inputs,
    read_manifest,
)
from eegkit.pipeline.params import (
    CODE_DIR,
    DEFAULT_FIGURES,
    NOTEBOOKS_DIR,
    check_params,
    select_notebooks,
    to_ipynb,
)

#: Written into the figures folder by every run; the reports read it.
RUN_INFO_NAME = "run_info.json"
#: run_info status of a notebook that stopped because the data has no captions.
CAPTIONS_WAIT = "waits for captions (the data has no captions.txt or images)"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the failing cell and the
    executed copy that holds the traceback."""


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

