"""``fleet run --slurm`` and ``fleet smoke --slurm``: the cluster's own engine starts one check (or one
training) per node; envdoctor only builds the command line, prints it, runs it and reads the results.

srun and sbatch are Slurm's stable interface across versions (pyslurm must match the Slurm major
version). Every command runs under a timeout in its own process group; on timeout or Ctrl-C srun gets
SIGTERM (it cancels the step on every node), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from envdoctor.errors import EnvdoctorError


class SlurmError(EnvdoctorError, RuntimeError):
    """Slurm cannot be used here (no srun, sbatch refused the job): one line, exit 2."""


def envdoctor_command() -> list[str]:
    """This envdoctor, as the nodes start it: the same interpreter path (a shared file system or the
    same image on every node is what a cluster has)."""
    return [sys.executable, "-m", "envdoctor"]


@dataclass
class Allocation:
    """What srun/sbatch are asked for."""

    nodes: int
    partition: str | None = None
    time_limit: str | None = None  # Slurm's --time, e.g. "10" minutes or "0:10:00"
    extra: tuple[str, ...] = ()  # more srun/sbatch options, passed as given

    def options(self) -> list[str]:
        out = [f"--nodes={self.nodes}", "--ntasks-per-node=1"]
        if self.partition:
            out.append(f"--partition={self.partition}")
        if self.time_limit:
            out.append(f"--time={self.time_limit}")
        return [*out, *self.extra]


def check_command(
    alloc: Allocation,
    out: Path,
    quick: bool = False,
    python: str | None = None,
    envdoctor: list[str] | None = None,
) -> list[str]:
    """``srun -N<n> --ntasks-per-node=1 envdoctor check --json --write OUT/{host}.json``."""
    check = [
        *(envdoctor or envdoctor_command()),
        "check",
        "--json",
        "--write",
        f"{out.resolve()}/{{host}}.json",
    ]
    if quick:
        check.append("--quick")
    if python:
        check += ["--python", python]
    return ["srun", *alloc.options(), *check]


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SlurmError(
            f"{tool} not found: `fleet --slurm` runs Slurm's own commands (install slurm-client)"
        )
    return path


def run(cmd: list[str], timeout_s: float, log: Path) -> tuple[int, str]:
    """Run a Slurm command, its stdout into ``log`` (one line per node adds up on a large fleet) and its
    stderr passed through; (exit status, '' or why it was stopped)."""
    require(cmd[0])
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, start_new_session=True)
        return _wait(proc, timeout_s)


def _wait(proc: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    try:
        return proc.wait(timeout=timeout_s), ""
    except subprocess.TimeoutExpired:
        _stop(proc)
        return proc.returncode, f"stopped after {timeout_s:g} s"
    except KeyboardInterrupt:
        _stop(proc)
        return proc.returncode, "interrupted"


def _stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def shown(cmd: list[str]) -> str:
    return shlex.join(cmd)


def submit_and_wait(script: Path, timeout_s: float) -> tuple[int, str, str]:
    """``sbatch --parsable --wait SCRIPT``: (exit status, job id, '' or why it was stopped). On timeout or
    Ctrl-C the job is cancelled with scancel: killing ``sbatch --wait`` alone leaves the job running."""
    require("sbatch")
    proc = subprocess.Popen(
        ["sbatch", "--parsable", "--wait", str(script)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    job = proc.stdout.readline().strip().split(";")[0]  # printed at submission; "ID;cluster" on some sites
    try:
        return proc.wait(timeout=timeout_s), job, ""
    except subprocess.TimeoutExpired:
        why = f"stopped after {timeout_s:g} s"
    except KeyboardInterrupt:
        why = "interrupted"
    if job:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    _stop(proc)
    return proc.returncode, job, why
