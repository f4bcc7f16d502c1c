"""The package layout of docs/architecture.md: stages import only earlier stages, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eegkit"
#: The stages in pipeline order (docs/architecture.md); a stage may import earlier ones.
STAGES = ("_checks", "_io", "data", "train", "twin", "metrics", "ceiling", "models", "classification",
          "retrieval", "report", "pipeline")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> str | None:
    """``eegkit.retrieval.losses`` -> ``retrieval``; the package itself has no stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _eegkit_imports(path: Path) -> list[str]:
    """Every eegkit module that ``path`` imports, at module level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "eegkit":
            if node.module == "eegkit":  # from eegkit import metrics, __version__
                found += [f"eegkit.{a.name}" for a in node.names if not a.name.startswith("__")]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "eegkit"]
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def test_every_module_belongs_to_a_known_stage():
    stages = {_stage(m) for m in MODULES} - {None}
    assert stages == set(STAGES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _stage(m)))
def test_no_module_imports_a_later_stage(module):
    own = STAGES.index(_stage(module))
    later = [imported for imported in _eegkit_imports(MODULES[module])
             if _stage(imported) is None or STAGES.index(_stage(imported)) > own]
    assert not later, f"{module} ({STAGES[own]}) imports {later}, a later stage; see docs/architecture.md"


def test_module_imports_have_no_cycle():
    graph = {m: {i for i in _eegkit_imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # A package's __init__ re-exports its own modules: that edge is not a cycle.
    graph = {m: {i for i in deps if not m == i.rsplit(".", 1)[0]} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node, path):
        if state.get(node) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        visit(module, [])
