"""When a notebook can be skipped: fingerprints of what its results depend on (its
source, parameters, the ``eegkit`` code, the data, earlier notebooks' results) and the
manifest of successful runs they are compared with (docs/pipeline.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import jupytext

from eegkit.pipeline.params import CODE_DIR, DEFAULT_FIGURES, _chosen_parameters

#: The record of successful runs, in the folder of the executed notebooks.
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
#: Modules no notebook imports (the PDF builder, the docs tables and this runner), by path
#: in the package; a folder (``pipeline``) stands for every module in it.
CODE_NOT_FINGERPRINTED = ("report/pdf.py", "report/docs_tables.py", "pipeline")
#: A quoted results-file name in a notebook's source (``"02_results.csv"``).
_RESULT_NAME = re.compile(r"""["'](\d\d_[\w.-]+)["']""")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_fingerprint(code_dir: str | Path = CODE_DIR) -> str:
    """Hash of the ``eegkit`` sources: every ``.py`` file, by name and content.

    Modules listed in :data:`CODE_NOT_FINGERPRINTED` (the PDF builder, the docs
    tables and the pipeline package) are left out, since no notebook imports them.

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
        skipped = any(relative == entry or relative.startswith(f"{entry}/")
                      for entry in CODE_NOT_FINGERPRINTED)
        if skipped or "__pycache__" in path.parts:
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
