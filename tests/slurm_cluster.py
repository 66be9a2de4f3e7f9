"""A real Slurm cluster (two nodes, or more) on this machine, for the fleet tests (docs/fleet.md).

Debian's slurm-wlm and munge: one munged with its own key and socket, one slurmctld, and one slurmd per
node (``-N n1``, ``-N n2``, ...) on 127.0.0.1 with ports of their own, all state under a fresh temporary folder.
Every daemon runs in the foreground as a child of this process and is stopped by its pid; free ports
and a new folder per start make a second (or concurrent) run independent of the first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "scontrol")
START_TIMEOUT_S = 30


def missing() -> str | None:
    """Why a cluster cannot start here, or None."""
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd needs root"
    return None


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """SIGTERM the daemon when the test process dies, even by SIGKILL: no cluster outlives its tests."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop` (always safe to call, also after a failed start)."""

    def __init__(self, nodes: tuple[str, ...] = ("n1", "n2")) -> None:
        self.nodes = nodes
        self.dir = Path(tempfile.mkdtemp(prefix="envdoctor-slurm-"))
        self.dir.chmod(0o755)  # munged runs as the munge user and must reach its socket
        self.conf = self.dir / "slurm.conf"
        self.health_dir = self.dir / "health.d"  # health.d/<node>: ENVDOCTOR_ARGS for that node's check
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def start(self, health_program: Path | None = None) -> LocalSlurm:
        try:
            self._start_munge()
            self._write_conf(health_program)
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            for node in self.nodes:
                self._spawn(f"slurmd-{node}", ["slurmd", "-D", "-f", str(self.conf), "-N", node])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        munge = self.dir / "munge"
        munge.mkdir(mode=0o755)
        key = munge / "munge.key"
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True, timeout=20)
        shutil.chown(munge, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o600)
        self.munge_socket = munge / "munge.sock"
        args = [f"--socket={self.munge_socket}", f"--key-file={key}", f"--pid-file={munge}/munged.pid"]
        args += [f"--log-file={munge}/munged.log", f"--seed-file={munge}/seed"]
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged", "-F", *args])
        self._until(lambda: self.munge_socket.exists(), "munged socket")

    def _write_conf(self, health_program: Path | None) -> None:
        d = self.dir
        for sub in ("state", "spool", "log", "health.d"):
            (d / sub).mkdir()
        ctld, slurmd, *node_ports = _free_ports(2 + len(self.nodes))
        nodes = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs=1 RealMemory=2000 "
            "State=UNKNOWN"
            for n, p in zip(self.nodes, node_ports, strict=True)
        )
        health = ""
        if health_program is not None:
            health = f"HealthCheckProgram={health_program}\nHealthCheckInterval=2\nHealthCheckNodeState=ANY\n"
        self.conf.write_text(
            f"""ClusterName=envdoctor-test
SlurmctldHost=localhost
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
{health}{nodes}
PartitionName=debug Nodes={",".join(self.nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
        )

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=_die_with_parent
        )
        log.close()

    def _until(self, ready, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited: {self.log_tail(dead[0])}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{what} not ready after {timeout_s:g} s: {self.log_tail('slurmctld')}")

    def states(self) -> dict[str, str]:
        """Node -> state as sinfo says (idle, drain, ...)."""
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def _wait_idle(self) -> None:
        self._until(lambda: set(self.states().values()) == {"idle"}, "every node idle")

    def run(self, cmd: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.dir / f"{name}.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "no output"

    def stop(self) -> None:
        """Cancel jobs, SIGTERM each daemon by pid (slurmd first, munged last; SIGKILL after 10 s), and
        remove the folder."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.run(["scancel", "--full", "--partition=debug"], check=False, timeout=10)
        for name in sorted(self.procs, key=lambda n: ("slurmd" not in n, n == "munged")):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
