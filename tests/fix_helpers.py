"""Throwaway virtual environments with real pip, for the ``envdoctor fix`` tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def make_venv(path: Path, system_site: bool = False, with_pip: bool = True) -> Path:
    """A fresh venv (``python -m venv``); returns its interpreter."""
    args = [sys.executable, "-m", "venv", str(path)]
    if system_site:
        args.append("--system-site-packages")
    if not with_pip:
        args.append("--without-pip")
    subprocess.run(args, check=True, timeout=120)
    return path / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    """Run pip in the venv; conflicts it merely warns about are exactly what the tests plant."""
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        timeout=300,
        capture_output=True,
    )


def freeze(python: Path) -> str:
    """``pip freeze --all`` of the venv only (exact versions, pip and setuptools included)."""
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "freeze", "--all", "--local"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
