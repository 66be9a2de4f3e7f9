"""The fault matrix: one row per fault, each proved by a test that runs the real CLI in a subprocess.

Every ``tests/faults/test_*.py`` module declares ``FAULTS``, a list of :class:`Fault` rows, and its
tests call :func:`run_fault` with their row: the command is run as a user would run it, and the row's
exit code, time bound and "no traceback" are asserted. docs/reliability.md holds the same rows, one
section per module; test_faults_doc.py checks that they agree (``python tests/faults/fault_table.py``
prints the sections).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Fault:
    test: str  # the test function that proves the row
    fault: str  # what goes wrong
    command: str  # what the user runs
    behaviour: str  # what envdoctor does about it
    exit_code: int
    bound_s: float  # the command finishes within this many seconds (on a loaded 2-core machine)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def rows_by_test(faults: list[Fault]) -> dict[str, Fault]:
    return {f.test: f for f in faults}


def run_fault(
    row: Fault,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | str | None = None,
    cwd: Path | None = None,
    redirect: str = "",
) -> Ran:
    """Run ``envdoctor ARGS`` in a child and assert the row: exit code, time bound, no traceback.

    ``stdin`` is text to feed, or a file descriptor/``subprocess.DEVNULL``; ``redirect`` is a shell
    redirection applied to the command (``<&-`` closes stdin, ``>/dev/full`` fills stdout).
    """
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    argv = [sys.executable, "-m", "envdoctor", *map(str, args)]
    if redirect:
        argv = ["sh", "-c", f'exec "$@" {redirect}', "sh", *argv]
    started = time.monotonic()
    done = subprocess.run(
        argv,
        input=stdin if isinstance(stdin, str) else None,
        stdin=None if isinstance(stdin, str) else (stdin if stdin is not None else subprocess.DEVNULL),
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=row.bound_s * 3 + 30,  # a hang fails the test instead of stalling the suite
    )
    ran = Ran(done.returncode, done.stdout or "", done.stderr or "", time.monotonic() - started)
    context = f"{row.command}\nexit {ran.returncode} in {ran.seconds:.1f}s\n{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}"
    assert "Traceback" not in ran.stderr + ran.stdout, context
    assert ran.returncode == row.exit_code, context
    assert ran.seconds < row.bound_s, context
    return ran


def one_line_error(ran: Ran, *words: str) -> str:
    """The single ``envdoctor: error:`` line of stderr, its last line, which must name every one of ``words``.

    Progress printed before it (smoke-train's step lines when stderr is not a terminal) may stand above.
    """
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("envdoctor: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], ran.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]
