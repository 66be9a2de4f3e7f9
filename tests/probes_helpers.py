"""Helpers for the probe tests: run envdoctor as users do, plant packages into real venvs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def site_packages(python: Path) -> Path:
    """The purelib directory of the venv owning ``python``."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


def plant_torch(python: Path, init_source: str, version: str = "9.9.9+planted") -> Path:
    """A ``torch`` package without metadata whose ``__init__`` runs ``init_source``."""
    pkg = site_packages(python) / "torch"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(init_source)
    (pkg / "version.py").write_text(f"__version__ = '{version}'\ncuda = '12.4'\nhip = None\n")
    return pkg


def launcher(tmp: Path) -> Path:
    """A script that starts the CLI the way the ``envdoctor`` console script does.

    Like a console script (and unlike ``python -m``), it does not put the current directory on sys.path.
    """
    script = tmp / "envdoctor-launcher.py"
    script.write_text("import sys\nfrom envdoctor.cli import main\nsys.exit(main())\n")
    return script


def repo_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment (plus ``extra``) with this checkout first on PYTHONPATH."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_envdoctor(
    args: list[str],
    tmp: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """``envdoctor ARGS`` as a subprocess of this interpreter, with this checkout first on sys.path."""
    return subprocess.run(
        [sys.executable, str(launcher(tmp)), *args],
        cwd=cwd or tmp,
        env=repo_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_json(args: list[str], tmp: Path, **kwargs: Any) -> dict[str, Any]:
    """The facts of ``envdoctor check --json ARGS``; asserts it exited normally (0 or 1)."""
    done = run_envdoctor(["check", "--json", *args], tmp, **kwargs)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["facts"]
