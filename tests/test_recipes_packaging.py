"""The recipes ship inside the wheel: a non-editable install into a fresh venv lists them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.recipes import recipe_names

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_non_editable_install_lists_shipped_recipes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    # Build from a copy so that the build leaves nothing behind in the checkout.
    shutil.copytree(
        REPO / "envdoctor", src / "envdoctor", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "recipes", src / "recipes")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    venv = tmp_path / "venv"
    # As a user installs it: envdoctor from the wheel, its dependencies (typer, rich, ...) from the index.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [py, "-m", "pip", "install", "-q", str(src)],
        check=True,
        timeout=300,
    )
    shutil.rmtree(src)  # the installed copy must not point back at the sources
    where = subprocess.run(
        [py, "-c", "import envdoctor; print(envdoctor.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert str(venv) in where
    listing = subprocess.run(
        [venv / "bin" / "envdoctor", "recipes"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    assert [line.split()[0] for line in listing.stdout.splitlines()] == recipe_names()
