"""``fix --apply --smoke`` and ``check --smoke`` with real venvs, real pip and real training: a
planted conflict fixed and proven by a smoke-train (torch installed from the local CPU wheel), and a
fix whose result imports but cannot train (a sitecustomize that breaks autograd) rolled back to the
exact starting files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from fix_faults import (
    LocalIndex,
    conflict_wheels,
    envdoctor,
    pip_env,
    plant_conflict,
    record_state,
    start_envdoctor,
    wait_for,
)

from tests.fix_helpers import make_venv

pytestmark = [pytest.mark.slow, pytest.mark.torch]

# Installed by beta 1.0 (the version the fix chooses): torch still imports, autograd does nothing.
BREAK_AUTOGRAD = """
import importlib.abc, importlib.util, sys

class _BreakAutograd(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.Tensor.backward = lambda self, *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _BreakAutograd())
"""


@pytest.fixture(scope="module")
def torch_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with torch 2.13.0: pip, with this machine's settings, takes the CPU wheel on disk."""
    py = make_venv(tmp_path_factory.mktemp("torch") / "venv")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True, timeout=900, capture_output=True
    )
    return py


def test_fix_apply_smoke_fixes_a_planted_conflict_and_proves_it_by_training(
    torch_venv, fix_wheels, fix_index
):
    env = pip_env(fix_index)
    plant_conflict(torch_venv, env, fix_wheels)
    done = envdoctor(
        "fix",
        "--apply",
        "--smoke",
        "--device",
        "cpu",
        "--quick",
        "--json",
        "--python",
        str(torch_venv),
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)  # one document: plan, steps, re-check, smoke verdict
    assert doc["ok"] and not doc["rolled_back"] and doc["errors_after"] == 0
    assert doc["plan"]["commands"][0].endswith("'beta<2'")
    smoke = doc["smoke"]
    assert smoke["ok"] and smoke["python"] == str(torch_venv) and smoke["failed"] == []
    assert {c["name"] for c in smoke["checks"]} >= {"fp32: loss fell", "fp32: accuracy"}
    assert all(c["ok"] for c in smoke["checks"])
    assert any("beta-1.0.dist-info" in p for p in record_state(torch_venv)["record"])

    proven = envdoctor(
        "check",
        "--smoke",
        "--device",
        "cpu",
        "--quick",
        "--json",
        "--python",
        str(torch_venv),
        env=env,
        timeout=1200,
    )
    report = json.loads(proven.stdout)
    assert proven.returncode == 0 and report["ok"] and report["smoke"]["ok"], proven.stdout + proven.stderr
    assert {"schema_version", "facts", "findings"} <= report.keys()
    undo = envdoctor("fix", "--rollback", "--python", str(torch_venv), env=env)
    assert undo.returncode == 0, undo.stdout + undo.stderr


def test_fix_whose_result_cannot_train_is_rolled_back_to_the_exact_start(torch_venv, tmp_path):
    wheels = conflict_wheels(tmp_path / "wheels", **{"sitecustomize.py": BREAK_AUTOGRAD})
    index = LocalIndex(wheels)
    try:
        env = pip_env(index)
        plant_conflict(torch_venv, env, wheels)
        start = record_state(torch_venv)
        done = envdoctor(
            "fix",
            "--apply",
            "--smoke",
            "--device",
            "cpu",
            "--quick",
            "--python",
            str(torch_venv),
            env=env,
            timeout=1200,
        )
    finally:
        index.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Smoke-train with" in done.stdout and ": passed" not in done.stdout
    assert "Rolled back (smoke-train failed: fp32: loss fell:" in done.stdout
    assert "environment restored exactly" in done.stdout and "Traceback" not in done.stderr
    assert record_state(torch_venv) == start
    site = next(torch_venv.parent.parent.glob("lib/python*/site-packages"))
    assert not (site / "sitecustomize.py").exists()


def test_smoke_without_torch_is_one_exit_code_for_both(venv_factory):
    py = venv_factory("check-smoke-no-torch")
    done = envdoctor("check", "--smoke", "--json", "--quick", "--python", str(py), env=pip_env(None))
    doc = json.loads(done.stdout)
    assert done.returncode == 1 and doc["ok"] is False
    assert doc["smoke"]["finding"] == "torch-missing" and doc["smoke"]["failed"][0].startswith(
        "[torch-missing]"
    )
    bad = envdoctor("check", "--smoke", "--precision", "fp7", "--python", str(py), env=pip_env(None))
    assert (
        bad.returncode == 2 and bad.stderr.startswith("envdoctor: error:") and "Traceback" not in bad.stderr
    )
    alone = envdoctor("fix", "--smoke", "--python", str(py), env=pip_env(None))
    assert alone.returncode == 2 and "--smoke proves an applied fix: add --apply" in alone.stderr
    # Nothing to apply: the environment as it is still gets its proof, in the same one document.
    nothing = envdoctor(
        "fix", "--apply", "--smoke", "--json", "--quick", "--python", str(py), env=pip_env(None)
    )
    doc = json.loads(nothing.stdout)
    assert nothing.returncode == 1 and doc["steps"] == [] and doc["smoke"]["finding"] == "torch-missing"
    assert doc["plan"]["python"] == str(py)


def test_ctrl_c_during_the_smoke_train_rolls_back_exactly(torch_venv, fix_wheels, fix_index, tmp_path):
    env = dict(pip_env(fix_index), TMPDIR=str(tmp_path))
    plant_conflict(torch_venv, env, fix_wheels)
    start = record_state(torch_venv)
    proc = start_envdoctor(
        "fix", "--apply", "--smoke", "--device", "cpu", "--quick", "--python", str(torch_venv), env=env
    )
    wait_for(
        lambda: any(tmp_path.glob("envdoctor-proof-*/config.json")) or proc.poll() is not None,
        600,
        "training",
    )
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert "Rolled back (interrupted by SIGINT): environment restored exactly" in out
    assert "Traceback" not in err
    assert record_state(torch_venv) == start
