"""Fixtures of the fault tests: wheels, a local index, and throwaway venvs copied from one template."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fix_faults import LocalIndex, conflict_wheels, pip_env

from tests.fix_helpers import make_venv


@pytest.fixture(scope="session")
def fix_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conflict_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def fix_index(fix_wheels: Path) -> Iterator[LocalIndex]:
    index = LocalIndex(fix_wheels)
    yield index
    index.close()


@pytest.fixture(scope="session")
def _template_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("template") / "venv").parent.parent


@pytest.fixture
def fresh_venv(_template_venv: Path, tmp_path: Path) -> Callable[..., Path]:
    """``fresh_venv(where=None)``: a copy of a venv with pip (seconds faster than ``python -m venv``)."""

    def copy(where: Path | None = None) -> Path:
        dest = where or tmp_path / "venv"
        subprocess.run(["cp", "-a", str(_template_venv), str(dest)], check=True, timeout=120)
        return dest / "bin" / "python"

    return copy


@pytest.fixture
def isolated_env(fix_index: LocalIndex) -> dict[str, str]:
    return pip_env(fix_index)
