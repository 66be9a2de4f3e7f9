"""The fleet on a real Slurm cluster on this machine: munged, slurmctld and one slurmd per node.

Skipped with the reason where Slurm or munge is not installed (.ci/run installs slurm-wlm and munge).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import LocalSlurm, missing

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(missing() is not None, reason=str(missing()))]

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "tests" / "fixtures" / "facts" / "h100_torch201_cu117.json"
SCRIPT = REPO / "envdoctor" / "fleet" / "envdoctor-health.sh"
ENVDOCTOR = [sys.executable, "-m", "envdoctor"]


@pytest.fixture(scope="module")
def cluster():
    """Three nodes: with two, one drifting node would tie with the other and leave no majority."""
    slurm = LocalSlurm(nodes=("n1", "n2", "n3"))
    health = slurm.dir / "health.sh"
    # A node runs the wrapper only when health.d/<node> (its defaults file) exists.
    health.write_text(
        f'#!/bin/sh\nd={slurm.health_dir}/$SLURMD_NODENAME\n[ -f "$d" ] || exit 0\n'
        f'ENVDOCTOR_HEALTH_DEFAULTS="$d" exec /bin/sh {SCRIPT}\n'
    )
    health.chmod(0o755)
    slurm.start(health_program=health)
    try:
        yield slurm
    finally:
        slurm.stop()


def envdoctor(cluster: LocalSlurm, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ENVDOCTOR, *args], env=cluster.env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_fleet_run_checks_every_node_through_srun(cluster, tmp_path):
    out = tmp_path / "fleet"
    result = envdoctor(cluster, "fleet", "run", "--slurm", "-N", "3", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("+ srun --nodes=3 --ntasks-per-node=1 ")
    assert f"check --json --write {out}/{{host}}.json --quick" in result.stderr.splitlines()[0].replace(
        "'", ""
    )
    assert sorted(p.name for p in out.glob("*.json")) == ["n1.json", "n2.json", "n3.json"]
    assert result.stdout.startswith("envdoctor fleet: 3 expected, 3 reported: consistent and healthy\n")
    logged = sorted((out / "srun.log").read_text().splitlines())
    assert logged == [f"{n}: wrote {out}/{n}.json" for n in ("n1", "n2", "n3")]
    assert json.loads((out / "n2.json").read_text())["host"] == "n2"


def test_drift_on_one_node_is_found_as_the_odd_node(cluster, tmp_path):
    """n2's node-local interpreter is a venv without torch; n1 and n3 have this one's."""
    local = tmp_path / "local"
    local.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(local / "n2")], check=True)
    for node in ("n1", "n3"):
        (local / node).symlink_to(sys.prefix)
    out = tmp_path / "fleet"
    result = envdoctor(
        cluster,
        "fleet",
        "run",
        "--slurm",
        "-N",
        "3",
        "--quick",
        "--python",
        f"{local}/{{host}}",
        "--out",
        str(out),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "n2: torch version not installed (majority 2." in result.stdout
    assert "--exclude=n2" in result.stdout
    report = json.loads(envdoctor(cluster, "fleet", "report", "--json", str(out)).stdout)
    assert list(report["groups"][0]["odd"]) == ["n2"]


def test_health_check_program_drains_the_broken_node(cluster):
    defaults = cluster.health_dir / "n2"
    defaults.write_text(
        f"SLURM_CONF={cluster.conf}\nENVDOCTOR='{' '.join(ENVDOCTOR)}'\nENVDOCTOR_ARGS='--facts {BROKEN}'\n"
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cluster.states().get("n2", "").startswith("drain"):
            time.sleep(0.5)
        states = cluster.states()
        assert states["n2"].startswith("drain") and states["n1"] == "idle", states
        node = cluster.run(["scontrol", "show", "node", "n2"]).stdout
        assert "Reason=envdoctor: arch-not-in-wheel: torch 2.0.1 has no kernels" in node
    finally:
        defaults.unlink()
        cluster.run(["scontrol", "update", "nodename=n2", "state=resume"], check=False)


@pytest.mark.slow
@pytest.mark.torch
def test_fleet_smoke_trains_on_two_nodes_through_sbatch(cluster, tmp_path):
    out = tmp_path / "smoke"
    port = _free_port()
    train = "--task local --seq-len 16 --batch-size 16 --min-accuracy 0 --steps 120"
    env = dict(cluster.env, OMP_NUM_THREADS="1")  # two ranks on a shared two-core machine
    result = subprocess.run(
        [*ENVDOCTOR, "fleet", "smoke", "--slurm", "-N", "2", "--nproc", "1", "--port", str(port)]
        + ["--train-args", train, "--out", str(out), "--timeout", "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    logs = " | ".join(p.read_text()[-500:] for p in out.glob("*.log"))
    assert result.returncode == 0, result.stdout + result.stderr + logs
    lines = result.stdout.splitlines()
    assert lines[1] == "envdoctor fleet smoke: 2 node(s), 2 reported, 2 passed"
    rows = {line.split()[0]: line.split() for line in lines[3:5]}
    # Any two nodes Slurm allocates (the drain test may have left one drained), each with its own row.
    assert len(rows) == 2 and set(rows) <= {"n1", "n2", "n3"} and {r[1] for r in rows.values()} == {"pass"}
    assert sorted(r[2] for r in rows.values()) == ["0", "1"]  # each node reported by its own first rank
    assert all(r[-1] == "GB/s" for r in rows.values())
    assert "verdict: every node passed and agrees" in result.stdout
    script = (out / "envdoctor-smoke.sbatch").read_text()
    assert '--rdzv-id "$SLURM_JOB_ID"' in script and "--nnodes 2" in script


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
