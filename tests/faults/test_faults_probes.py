"""Faults of the interpreter under check: a ``--python`` that never answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import ROOT, Fault, rows_by_test, run_fault

FAULTS = [
    Fault(
        "test_python_target_hangs",
        "--python names a program that never answers (a wrapper stuck in its startup)",
        "ENVDOCTOR_PROBE_TIMEOUT=2 ENVDOCTOR_TORCH_TIMEOUT=2 envdoctor check --python HANG --json",
        "its process group is killed at the probe timeout; probe-failed (error) and torch-import-error",
        1,
        20,
    ),
    Fault(
        "test_check_interrupted_while_torch_import_hangs",
        "Ctrl-C (SIGINT) or SIGTERM while `import torch` hangs in the probe child",
        "envdoctor check, then Ctrl-C or kill -TERM",
        "exits at once (130 / 143) and kills the probe children, which run in sessions of their own",
        130,
        10,
    ),
    Fault(
        "test_check_sigkilled_while_torch_import_hangs",
        "SIGKILL (the OOM killer, `kill -9`) while `import torch` hangs in the probe child",
        "envdoctor check, then kill -9",
        "the probe child, in a session of its own, dies with envdoctor (PR_SET_PDEATHSIG) instead of hanging on",
        137,
        10,
    ),
]
ROW = rows_by_test(FAULTS)


def test_python_target_hangs(tmp_path) -> None:
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")  # a grandchild holds the pipes too
    hang.chmod(0o755)
    env = {"ENVDOCTOR_PROBE_TIMEOUT": "2", "ENVDOCTOR_TORCH_TIMEOUT": "2"}
    ran = run_fault(ROW["test_python_target_hangs"], ["check", "--python", hang, "--json"], env=env)
    findings = {f["id"]: f for f in json.loads(ran.stdout)["findings"]}
    assert findings["probe-failed"]["severity"] == "error"
    assert str(hang) in findings["probe-failed"]["message"]
    assert findings["torch-import-error"]["evidence"]["torch.status"] == "timeout"


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody has reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_check_interrupted_while_torch_import_hangs(tmp_path, sig) -> None:
    row = ROW["test_check_interrupted_while_torch_import_hangs"]
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    pid_file = tmp_path / "torch-child.pid"
    fake.joinpath("__init__.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'site'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "envdoctor", "check", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # as a terminal's foreground job: the signal goes to its group
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():  # the probe child is inside `import torch`
        assert proc.poll() is None and time.monotonic() < deadline, "the torch probe never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    started = time.monotonic()
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=row.bound_s * 3)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert time.monotonic() - started < row.bound_s
    assert "Traceback" not in out + err
    gone = time.monotonic() + 5
    while _alive(child) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not _alive(child), f"the torch probe child {child} outlived envdoctor"


class _CtrlCInFinalizer:
    """Ctrl-C arriving while the main thread runs a finalizer: Python prints it and drops it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_swallowed_by_a_finalizer_still_ends_check(tmp_path, monkeypatch) -> None:
    """The CI failure behind the test above, made deterministic: a KeyboardInterrupt raised inside
    importlib's module-lock weakref callback was lost, and check waited out the hung ``import torch``."""
    from envdoctor import probes

    fake = tmp_path / "torch"
    fake.mkdir()
    pid_file = tmp_path / "torch-child.pid"
    fake.joinpath("__init__.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def ctrl_c_lost_in_a_finalizer() -> None:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the torch probe never started"
            time.sleep(0.05)
        _CtrlCInFinalizer()  # dropped at once: __del__ runs, its KeyboardInterrupt is "ignored"

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        probes.collect(torch_timeout=120, while_waiting=ctrl_c_lost_in_a_finalizer)
    assert time.monotonic() - started < 60  # not the 120 s of the torch timeout
    assert reported == []  # no "Exception ignored ... Traceback" on the terminal either
    assert sys.unraisablehook == reported.append
    child = int(pid_file.read_text())
    gone = time.monotonic() + 5
    while _alive(child) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not _alive(child), f"the torch probe child {child} outlived the interrupted check"


def test_ctrl_c_inside_exec_of_source_text_still_exits_130(tmp_path) -> None:
    """Ctrl-C landing while the main thread runs ``exec`` of source text (dataclasses build their
    methods so; check loads its rules while the probes run): CPython marks such a KeyboardInterrupt
    unhandled even when it is caught, and the process died of SIGINT (-2) after main returned 130,
    2 runs in 100 beside a CPU hog. Fed here through the hook that runs while the probes wait."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    fake.joinpath("__init__.py").write_text("import time\ntime.sleep(300)\n")
    runner = tmp_path / "site" / "ctrl_c_in_exec"  # run with -m, as `python -m envdoctor` runs
    runner.mkdir()
    runner.joinpath("__main__.py").write_text(
        "import sys\n"
        "from envdoctor import probes\n"
        "from envdoctor.cli import main\n"
        "run = probes._run_concurrently\n"
        "def ctrl_c_in_exec(*args):\n"
        "    exec('import signal\\nsignal.raise_signal(signal.SIGINT)\\nafter = 1')\n"
        "def patched(probe_fns, facts, while_waiting=None, *rest):\n"
        "    return run(probe_fns, facts, ctrl_c_in_exec, *rest)\n"
        "probes._run_concurrently = patched\n"
        "sys.exit(main(['check', '--json']))\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'site'}")
    ran = subprocess.run(
        [sys.executable, "-m", "ctrl_c_in_exec"], capture_output=True, text=True, env=env, timeout=60
    )
    assert ran.returncode == 130, (ran.returncode, ran.stderr[-2000:])
    assert "Traceback" not in ran.stdout + ran.stderr


def test_check_sigkilled_while_torch_import_hangs(tmp_path) -> None:
    row = ROW["test_check_sigkilled_while_torch_import_hangs"]
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    pid_file = tmp_path / "torch-child.pid"
    fake.joinpath("__init__.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'site'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "envdoctor", "check", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the torch probe never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.kill()
    assert proc.wait(timeout=row.bound_s) == 128 - row.exit_code  # -9: killed, as asked
    gone = time.monotonic() + row.bound_s
    while _alive(child) and time.monotonic() < gone:
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, f"the torch probe child {child} outlived a SIGKILLed envdoctor"
