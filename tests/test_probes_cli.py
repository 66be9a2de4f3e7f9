"""``envdoctor check`` as a subprocess, as users run it: secrets, the working directory, bad targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from probes_helpers import check_json, plant_torch, run_envdoctor

SECRETS = {
    "FOO_TOKEN": "tok-4f1c9e2b",
    "NCCL_SECRET_KEY": "nccl-8d7e6f5a",
    "NCCL_IB_PASSWORD": "pw-1a2b3c4d",
    "HF_TOKEN": "hf_5e6f7a8b",
    "AWS_SECRET_ACCESS_KEY": "aws-9c0d1e2f",
}


def test_secrets_never_reach_any_output_format(tmp_path) -> None:
    env = {**SECRETS, "NCCL_SOCKET_IFNAME": "eth-allowed7"}
    outputs = []
    for fmt in ("text", "markdown", "json"):
        done = run_envdoctor(["check", "--quick", "-v", "--format", fmt], tmp_path, env=env)
        assert done.returncode in (0, 1), done.stderr
        outputs.append(done.stdout + done.stderr)
    for text in outputs:
        for name, value in SECRETS.items():
            assert value not in text, f"{name} leaked"
    reported = json.loads(outputs[2])["facts"]["system"]["env"]
    assert reported["NCCL_SOCKET_IFNAME"] == "eth-allowed7"
    assert not set(SECRETS) & set(reported)


def test_missing_python_exits_2_with_one_line(tmp_path) -> None:
    done = run_envdoctor(["check", "--python", str(tmp_path / "no" / "python")], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file" in lines[0]


def test_not_a_python_exits_2_with_one_line(tmp_path) -> None:
    done = run_envdoctor(["check", "--python", "/bin/true"], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "not a Python 3.8+ interpreter" in done.stderr


@pytest.mark.parametrize(
    ("source", "status", "error"),
    [
        (
            "raise ImportError('undefined symbol: ncclCommRegister')\n",
            "import-error",
            "ImportError: undefined",
        ),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "crashed", "killed by SIGSEGV"),
    ],
)
def test_broken_torch_target_still_gives_a_report(venv_factory, tmp_path, source, status, error) -> None:
    python = venv_factory(f"cli-torch-{status}")
    plant_torch(python, source)
    facts = check_json(["--python", str(python)], tmp_path)
    assert facts["torch"]["status"] == status
    assert facts["torch"]["error"].startswith(error)
    assert facts["python"]["executable"] == str(python)


def test_check_never_reads_python_files_in_the_working_directory(venv_factory, tmp_path) -> None:
    """A peer tool reads every .py under the current directory; envdoctor must not.

    The directory holds a FIFO named like a module (opening it blocks forever, so any read hangs the
    run into the test's timeout), modules named like the ones probes use that leave a marker when
    imported, and a few hundred ordinary .py files.
    """
    work = tmp_path / "project"
    work.mkdir()
    marker = tmp_path / "imported-from-cwd"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in ("torch", "numpy", "pynvml", "docker", "packaging", "sitecustomize", "usercustomize", "json"):
        (work / f"{name}.py").write_text(plant)
    for i in range(300):
        (work / f"module_{i}.py").write_text(plant)
    os.mkfifo(work / "trap.py")
    python = venv_factory("bare")
    started = time.monotonic()
    facts = check_json(["--python", str(python)], tmp_path, cwd=work, timeout=60)
    assert not marker.exists(), marker.read_text()
    assert facts["torch"]["status"] == "missing"
    assert set(facts["packages"]["all"]) <= {"envdoctor"}  # the checkout is on PYTHONPATH
    assert time.monotonic() - started < 60


def test_hung_nvidia_smi_does_not_hang_check(tmp_path) -> None:
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("a real driver answers NVML first")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nsleep 30\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "ENVDOCTOR_PROBE_TIMEOUT": "1"}
    started = time.monotonic()
    facts = check_json(["--quick"], tmp_path, env=env, timeout=60)
    assert time.monotonic() - started < 15
    assert facts["nvidia"]["source"] == "nvidia-smi"
    assert facts["nvidia"]["error"] == "timeout"


def test_check_quick_imports_nothing_heavy_once_tables_are_cached(tmp_path) -> None:
    """The modules that made `check --quick` slow stay out of its process (the benchmark says how fast).

    typer and click are the CLI itself and allowed; what a newer typer adds (pydantic) and what only
    --help or another command needs (rich) are not.
    """
    script = (
        "import contextlib, io, sys\n"
        "before = set(sys.modules)  # a site .pth may import things of its own\n"
        "from envdoctor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['check', '--quick', '--json'])\n"
        "heavy = ('torch', 'numpy', 'yaml', 'rich', 'docker', 'requests', 'http', 'email', 'ssl',\n"
        "         'pydantic', 'concurrent', 'importlib.resources')\n"
        "print(' '.join(m for m in heavy if m in set(sys.modules) - before))\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert runs[0].stdout.split() in (["yaml"], []), runs[0].stdout  # the first run parses the tables
    assert runs[1].stdout.split() == [], runs[1].stdout
