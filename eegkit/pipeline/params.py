"""The notebooks' parameters, checked against what each notebook declares, and the
notebooks rendered as parameterised ``.ipynb`` files (for papermill and nbmake).

Every path parameter reaches a notebook as an absolute path: relative paths of a
parameters file are taken from the repository root, those given with ``-p`` from the
current folder, and a notebook's own default from ``notebooks/``.
"""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

import jupytext
import nbformat
import yaml
from papermill.parameterize import parameterize_notebook

#: The ``eegkit`` package folder, whose code :func:`eegkit.pipeline.code_fingerprint`
#: hashes.
CODE_DIR = Path(__file__).resolve().parent.parent
#: The checkout: relative paths of a parameters file are taken from here.
REPO_DIR = CODE_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
#: Defaults of the command line: the parameters of ``make report`` and its folders.
DEFAULT_PARAMS = REPO_DIR / "report" / "params.yaml"
DEFAULT_OUT = REPO_DIR / "build" / "notebooks"
DEFAULT_FIGURES = REPO_DIR / "figures"
DEFAULT_REPORT_DIR = REPO_DIR / "report"
PATH_PARAMETERS = ("data_dir", "figures_dir", "checkpoint_dir")
#: Parameters :func:`~eegkit.pipeline.runner.run` reads itself (to find the data and the device), whichever
#: notebooks declare them.
RUN_PARAMETERS = ("data_dir", "twin_preset", "seed", "device", "figures_dir")


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
    one notebook (and those :func:`~eegkit.pipeline.runner.run` reads itself:
    :data:`RUN_PARAMETERS`); keys of the ``notebooks`` section must be notebook stems,
    and their names must be declared by that notebook.

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
