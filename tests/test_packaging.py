"""A non-editable install ships every subpackage (pyproject's package discovery)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_module(tmp_path):
    # Built from a copy: setuptools would otherwise reuse (and leave) build/ in the checkout.
    source = tmp_path / "src"
    shutil.copytree(ROOT / "eegkit", source / "eegkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("eegkit-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "eegkit").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources - shipped == set(), "modules missing from the wheel; check [tool.setuptools.packages.find]"
