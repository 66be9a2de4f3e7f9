"""The OpenMP policy of smoke-train's workers: threads from the usable CPUs and the ranks per node."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.smoke import threads
from envdoctor.smoke.runner import child_env

ROOT = Path(__file__).resolve().parents[1]


def test_a_single_process_takes_every_usable_cpu_and_sleeps_when_idle() -> None:
    policy = threads.choose({}, cpus=2)
    assert (policy.threads, policy.wait_policy, policy.source) == (2, "PASSIVE", "chosen")


def test_torchrun_ranks_share_the_cpus_and_torchruns_default_is_not_the_users() -> None:
    # torchrun sets OMP_NUM_THREADS=1 in every worker; the runner's mark says the user did not
    env = {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1", threads.USER_MARK: ""}
    policy = threads.choose(env, cpus=8)
    assert (policy.threads, policy.local_ranks, policy.source) == (4, 2, "chosen")
    assert threads.choose({"LOCAL_WORLD_SIZE": "4"}, cpus=2).threads == 1  # never 0


def test_ranks_per_node_under_srun() -> None:
    assert threads.local_ranks({"SLURM_NTASKS_PER_NODE": "3"}) == 3
    assert threads.local_ranks({"SLURM_TASKS_PER_NODE": "2(x3),1"}) == 2
    assert threads.local_ranks({"LOCAL_WORLD_SIZE": "4", "SLURM_NTASKS_PER_NODE": "2"}) == 4
    assert threads.local_ranks({"LOCAL_WORLD_SIZE": "x"}) == 1


def test_the_users_values_are_kept() -> None:
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "active"}
    policy = threads.choose(env, cpus=2)
    assert (policy.threads, policy.wait_policy, policy.source) == (3, "ACTIVE", "user")
    only_wait = threads.choose({"OMP_WAIT_POLICY": "ACTIVE", "LOCAL_WORLD_SIZE": "2"}, cpus=4)
    assert (only_wait.threads, only_wait.source) == (2, "user wait policy")


def test_apply_writes_the_environment_and_is_idempotent() -> None:
    env = {"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "1", threads.USER_MARK: ""}
    first = threads.apply(env)
    assert env["OMP_NUM_THREADS"] == str(first.threads) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert threads.apply(env) == first  # a second call does not take its own values for the user's


def test_the_runner_marks_what_the_user_set(monkeypatch) -> None:
    monkeypatch.delenv(threads.USER_MARK, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert child_env()[threads.USER_MARK] == "OMP_NUM_THREADS"


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_the_affinity_mask_not_the_machine_sets_the_cpu_count() -> None:
    code = "from envdoctor.smoke import threads; print(threads.choose({}).threads)"
    proc = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_the_verdict_header_says_what_was_chosen() -> None:
    from rich.console import Console

    from envdoctor.smoke import render

    policy = threads.choose({"LOCAL_WORLD_SIZE": "2"}, cpus=4).to_dict()
    result = {
        "environment": {"torch": "2", "device_name": "cpu", "device": "cpu", "world_size": 1},
        "model": {"params": 1, "attention": "pam", "stages": 3},
        "task": {"name": "local"},
        "runs": [],
    }
    result["environment"]["thread_policy"] = policy
    console = Console(record=True, width=200)
    render.print_text(result, [], None, console)
    assert "CPU threads per rank: 2, OMP_WAIT_POLICY=PASSIVE (chosen: 4 CPU(s) usable, 2 rank(s)" in (
        console.export_text()
    )
