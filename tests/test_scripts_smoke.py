"""benchmarks/ and studies/: every script answers --help, is indexed, imports no private name."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("benchmarks", "studies")
SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for folder in FOLDERS for p in (ROOT / folder).glob("*.py"))
#: Scripts that still import private names, with the owner's fix to come; strict, so
#: the entry has to go once the import is fixed.
PRIVATE_IMPORTS_PENDING = {
    "benchmarks/train_models.py": "replaces eegkit.train._lr_lambda for its time budget",
}


def test_both_folders_hold_scripts():
    assert {s.split("/")[0] for s in SCRIPTS} == set(FOLDERS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_answers_help(script, monkeypatch, capsys):
    """``python SCRIPT --help`` prints its usage and exits 0 (run in this process: fast)."""
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert exit_.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_in_its_folders_index(script):
    folder, name = script.split("/")
    assert f"`{name}`" in (ROOT / folder / "README.md").read_text(), f"add {name} to {folder}/README.md"


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "eegkit":
            found += [f"{node.module} (module)" for part in node.module.split(".") if part.startswith("_")]
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.split(".")[0] == "eegkit" and any(p.startswith("_") for p in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            # train._lr_lambda, eegkit.ceiling._observe: a private name reached by attribute
            base = node.value
            if isinstance(base, ast.Name) and base.id in _eegkit_aliases(path):
                found.append(f"{base.id}.{node.attr}")
    return found


def _eegkit_aliases(path: Path) -> set[str]:
    """Names bound to eegkit modules in ``path`` (``import eegkit``, ``from eegkit import train``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "eegkit"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "eegkit":
            names |= {a.asname or a.name for a in node.names}
    return names


@pytest.mark.parametrize("script", [
    pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=PRIVATE_IMPORTS_PENDING[s]))
    if s in PRIVATE_IMPORTS_PENDING else s
    for s in SCRIPTS])
def test_script_imports_no_private_name(script):
    found = _private_imports(ROOT / script)
    assert not found, (f"{script} uses private names {found}; make them public in eegkit "
                       "(and test them there) or do without")
