"""Ctrl-C and SIGTERM during ``fix --apply``: forwarded to pip, rolled back, the state said in one
line, no traceback, exit 128 + the signal; and two ``fix --apply`` on one environment at once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fix_faults import envdoctor, plant_conflict, processes_using, record_state, start_envdoctor, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_pip_runs_rolls_back_and_says_so(sig, fresh_venv, isolated_env, fix_wheels, fix_index):
    py = fresh_venv()
    prefix = py.parent.parent
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    fix_index.hold()
    proc = start_envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    wait_for(lambda: fix_index.requested.is_set() or proc.poll() is not None, what="pip's download")
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)  # the terminal's process group: envdoctor only, pip has its own
    out, err = proc.communicate(timeout=120)
    fix_index.release()
    assert proc.returncode == 128 + sig, out + err
    assert time.monotonic() - t0 < 60
    assert f"Rolled back (interrupted by {sig.name}): environment restored exactly" in out
    assert "Traceback" not in err + out
    assert not processes_using(prefix)
    assert record_state(py) == start


def test_ctrl_c_before_any_change_exits_130_without_a_traceback(
    fresh_venv, isolated_env, fix_wheels, tmp_path
):
    py = fresh_venv()
    plant_conflict(py, isolated_env, fix_wheels)
    # A torch whose import hangs (30 s): Ctrl-C lands while envdoctor probes, before any change.
    mark = tmp_path / "probing"
    site = next(py.parent.parent.glob("lib/python*/site-packages"))
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text(
        f"import time\nopen({str(mark)!r}, 'w').close()\ntime.sleep(30)\n"
    )
    start = record_state(py)
    proc = start_envdoctor("fix", "--apply", "--python", str(py), env=isolated_env)
    wait_for(lambda: mark.exists() or proc.poll() is not None, what="the torch probe")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert err.strip() == "envdoctor: interrupted; the environment was not changed by this run"
    assert not (py.parent.parent / ".envdoctor" / "snapshots").exists()
    assert record_state(py) == start


def test_second_apply_refuses_in_one_line_while_the_first_runs(
    fresh_venv, isolated_env, fix_wheels, fix_index
):
    py = fresh_venv()
    prefix = py.parent.parent
    plant_conflict(py, isolated_env, fix_wheels)
    fix_index.hold()
    first = start_envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    wait_for(lambda: fix_index.requested.is_set() or first.poll() is not None, what="the first run's pip")
    second = envdoctor("fix", "--apply", "--quick", "--wait", "1", "--python", str(py), env=isolated_env)
    assert second.returncode == 2, second.stdout + second.stderr
    lines = second.stderr.strip().splitlines()
    assert lines[-1] == (
        f"envdoctor: error: {prefix} is being changed by another envdoctor fix (pid {first.pid}); "
        "nothing was done, try again when it ends"
    )
    assert "Traceback" not in second.stderr and not second.stdout
    rollback = envdoctor("fix", "--rollback", "--wait", "0", "--python", str(py), env=isolated_env)
    assert rollback.returncode == 2 and "being changed by another envdoctor fix" in rollback.stderr
    fix_index.release()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "Applied. Errors before: 1, after: 0." in out, out + err
    assert "beta-1.0.dist-info/RECORD" in " ".join(record_state(py)["record"])


def test_second_apply_waits_then_plans_from_what_the_first_left(
    fresh_venv, isolated_env, fix_wheels, fix_index
):
    py = fresh_venv()
    plant_conflict(py, isolated_env, fix_wheels)
    fix_index.hold()
    first = start_envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    wait_for(lambda: fix_index.requested.is_set() or first.poll() is not None, what="the first run's pip")
    second = start_envdoctor(
        "fix", "--apply", "--quick", "--wait", "120", "--python", str(py), env=isolated_env
    )
    time.sleep(2)
    assert second.poll() is None  # waiting for the lock
    fix_index.release()
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0 and "nothing to do" in out2, out2 + err2
    assert "waiting up to 120 s for another envdoctor fix" in err2
    fixed = record_state(py)
    assert any("beta-1.0.dist-info" in p for p in fixed["record"])
    assert not any("beta-2.0.dist-info" in p for p in fixed["record"])
