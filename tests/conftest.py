"""Generic fixtures shared by every test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from envdoctor.smoke import threads

threads.apply()  # the training tests run torch in this process: same OpenMP policy as smoke-train's workers

# The fault tests press Ctrl-C on envdoctor. A suite started in the background of a non-interactive
# shell (`cmd &`) inherits SIGINT ignored, and so would every envdoctor it starts (envdoctor keeps an
# ignored SIGINT ignored, as `nohup` users expect): give the suite Python's own handler, which its
# children reset to the default on exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches written by envdoctor (the knowledge tables' JSON) go to a temporary dir, not ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="session")
def venv_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make a real venv once per session per name and return its python.

    ``venv_factory("name", ["pkg==1.0"])`` creates it with pip and installs the packages;
    without packages it is made ``--without-pip`` (a tenth of a second) unless ``with_pip=True``.
    Tests that change a venv must use a name of their own.
    """
    root = tmp_path_factory.mktemp("venvs")
    made: dict[str, Path] = {}

    def make(name: str, install: Sequence[str] = (), *, with_pip: bool | None = None) -> Path:
        if name in made:
            return made[name]
        path = root / name
        pip = bool(install) if with_pip is None else with_pip
        subprocess.run(
            [sys.executable, "-m", "venv", str(path), *([] if pip else ["--without-pip"])],
            check=True,
            timeout=300,
        )
        python = path / "bin" / "python"
        if install:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *install],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0:
                pytest.fail(f"pip install {' '.join(install)} failed:\n{done.stdout}\n{done.stderr}")
        made[name] = python
        return python

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a Docker engine is installed and started by .ci/run: a skipped docker test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and item.get_closest_marker("docker"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"docker test skipped in CI, where an engine must exist: {reason}"
