"""``fix --apply`` as a transaction, with real venvs, real pip and a package index on 127.0.0.1:
the environment ends as planned or exactly as it started (hash of every RECORD-listed file),
including after SIGKILL of envdoctor at chosen points followed by ``fix --rollback``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fix_faults import envdoctor, plant_conflict, processes_using, record_state, start_envdoctor, wait_for

from envdoctor.findings import PipInstall
from envdoctor.fix.apply import apply_plan
from envdoctor.fix.model import Plan, Step

pytestmark = pytest.mark.slow


def _versions(state: dict) -> set[str]:
    return {p.split("/")[-2] for p in state["record"] if ".dist-info/" in p}


def test_fix_apply_ends_in_the_planned_state_and_rollback_restores_every_file(
    fresh_venv, isolated_env, fix_wheels
):
    py = fresh_venv()
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    done = envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Applied. Errors before: 1, after: 0." in done.stdout
    fixed = record_state(py)
    assert "beta-1.0.dist-info" in _versions(fixed) and "beta-2.0.dist-info" not in _versions(fixed)
    assert (py.parent / "beta-tool").read_text() == "#!/bin/sh\necho beta 1\n"
    snap = json.loads(next((py.parent.parent / ".envdoctor" / "snapshots").glob("*.json")).read_text())
    assert snap["state"] == "ready" and snap["provenance"]["indexes"]["PIP_INDEX_URL"].startswith(
        "http://127."
    )
    assert snap["provenance"]["distributions"]["beta"]["version"] == "2.0"

    undo = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert undo.returncode == 0 and "environment restored exactly" in undo.stdout, undo.stdout + undo.stderr
    assert record_state(py) == start
    assert (py.parent / "beta-tool").read_text() == "#!/bin/sh\necho beta 2\n"
    again = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)  # idempotent
    assert again.returncode == 0 and record_state(py) == start


# Where envdoctor is SIGKILLed: (what to wait for before the kill, whether a snapshot must exist).
POINTS = {
    "lock-taken": (lambda prefix, index: (prefix / ".envdoctor" / "lock").exists(), False),
    "snapshot-written": (
        lambda prefix, index: any((prefix / ".envdoctor" / "snapshots").glob("*.json")),
        True,
    ),
    "pip-downloading": (lambda prefix, index: index.requested.is_set(), True),
    "pip-installed": (
        lambda prefix, index: any(prefix.glob("lib/python*/site-packages/beta-1.0.dist-info/RECORD")),
        True,
    ),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_then_rollback_restores_the_exact_starting_files(
    point, fresh_venv, isolated_env, fix_wheels, fix_index
):
    py = fresh_venv()
    prefix = py.parent.parent
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    if point == "pip-downloading":
        fix_index.hold()
    proc = start_envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    condition, snapshot_needed = POINTS[point]
    wait_for(lambda: condition(prefix, fix_index) or proc.poll() is not None, what=point)
    assert proc.poll() is None, f"fix ended before {point}: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    fix_index.release()
    # pip died with envdoctor (it never runs on detached).
    wait_for(lambda: not processes_using(prefix), timeout=10, what="no process left in the venv")

    undo = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    if snapshot_needed or undo.returncode == 0:
        assert undo.returncode == 0, undo.stdout + undo.stderr
    else:  # killed before any snapshot: nothing was changed and there is nothing to roll back
        assert undo.returncode == 2 and undo.stderr.startswith("envdoctor: error: no snapshot under")
    assert "Traceback" not in undo.stderr
    assert record_state(py) == start


def test_sigkill_between_two_steps_of_a_plan_is_rolled_back(fresh_venv, isolated_env, fix_wheels, fix_index):
    """An uninstall that already ran, then a kill while the next step downloads: files come back."""
    py = fresh_venv()
    prefix = py.parent.parent
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    driver = (
        "from envdoctor.fix import apply; from envdoctor.findings import *; from envdoctor.fix.model import Plan, Step\n"
        f"plan = Plan({str(py)!r}, {str(prefix)!r}, [Step(PipUninstall(('alpha',))), Step(PipInstall(('beta==1.0',)))])\n"
        "apply.apply_plan(plan, lambda: [], 0, timeout=120)\n"
    )
    fix_index.hold()
    proc = subprocess.Popen([sys.executable, "-c", driver], env=isolated_env, start_new_session=True)
    wait_for(fix_index.requested.is_set, what="the second step's download")
    assert not list(prefix.glob("lib/python*/site-packages/alpha-1.0.dist-info"))  # step 1 ran
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    fix_index.release()
    wait_for(lambda: not processes_using(prefix), timeout=10, what="no process left in the venv")
    undo = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert record_state(py) == start


def test_failed_step_rolls_back_by_rename_even_without_the_index(fresh_venv, isolated_env, fix_wheels):
    """The old versions never come from an index: a rollback works with the index gone."""
    py = fresh_venv()
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    offline = dict(isolated_env, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0", PIP_TIMEOUT="2")
    t0 = time.monotonic()
    done = envdoctor("fix", "--apply", "--quick", "--python", str(py), env=offline)
    assert done.returncode == 1 and "Rolled back (step failed:" in done.stdout, done.stdout + done.stderr
    assert "environment restored exactly" in done.stdout and time.monotonic() - t0 < 120
    assert record_state(py) == start


def test_an_error_inside_the_transaction_rolls_back(fresh_venv, isolated_env, fix_wheels, monkeypatch):
    """A re-check that raises (a probe's bug, a full disk) after pip changed files: rolled back."""
    py = fresh_venv()
    prefix = py.parent.parent
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    for name, value in isolated_env.items():
        if name.startswith("PIP_"):
            monkeypatch.setenv(name, value)
    plan = Plan(str(py), str(prefix), [Step(PipInstall(("beta==1.0",)))])

    def broken_recheck():
        raise OSError(28, "No space left on device")

    result = apply_plan(plan, broken_recheck, 0, timeout=120)
    assert result.steps[0].ok and result.rolled_back and result.rollback.ok
    assert result.reason == "OSError: [Errno 28] No space left on device"
    assert record_state(py) == start
