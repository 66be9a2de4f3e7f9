"""--python takes a venv directory everywhere (as check does), and check says which interpreter it checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import invoke


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv


def test_smoke_train_python_venv_dir_reaches_its_interpreter(bare_venv, tmp_path):
    result = invoke(["smoke-train", "--python", bare_venv, "--steps", "1", "--out", tmp_path / "o", "--json"])
    assert "Permission denied" not in result.output
    assert '"finding": "torch-missing"' in result.stdout  # that venv has no torch: it was really asked
    assert result.exit_code == 2


def test_smoke_train_python_dir_without_python_is_one_line_exit_2(tmp_path):
    result = invoke(["smoke-train", "--python", tmp_path, "--steps", "1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"envdoctor: error: --python {tmp_path}: a directory without bin/python"


def test_check_header_names_the_interpreter_it_checked(bare_venv):
    result = invoke(["check", "--python", bare_venv, "--quick"])
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"envdoctor check of {bare_venv / 'bin' / 'python'}")
    assert "venv" in first
    markdown = invoke(["check", "--python", bare_venv, "--quick", "--format", "markdown"]).stdout
    assert markdown.splitlines()[0].startswith(f"## envdoctor check of {bare_venv / 'bin' / 'python'}")
