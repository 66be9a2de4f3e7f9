"""OpenMP threads and wait policy of a training process, chosen once, the same way for every worker.

torch's CPU kernels run on an OpenMP pool whose threads spin-wait between parallel regions. On a
machine where another process competes for the cores, a spinning thread holds a core the other
process needs and the pool's barriers wait for threads that are not scheduled: one CPU hog made a
10 s smoke-train take 182 s on 2 cores. The policy here:

- threads = the CPUs this process may run on (``os.sched_getaffinity``: cgroups, ``taskset``,
  Slurm's binding) divided by the training processes on this node (``LOCAL_WORLD_SIZE`` from
  torchrun, else ``SLURM_NTASKS_PER_NODE`` / ``SLURM_TASKS_PER_NODE`` under srun), at least 1;
- wait policy PASSIVE: idle threads sleep instead of spinning, so a busy core costs a wait, not a
  stall (cost on an idle machine: measured by ``bench/smoke_cpu --with-load``);
- a value the user set in ``OMP_NUM_THREADS`` / ``OMP_WAIT_POLICY`` is kept. torchrun sets
  ``OMP_NUM_THREADS=1`` itself when the user did not; the runner records which variables came from
  the user in ``ENVDOCTOR_USER_OMP`` so that torchrun's default is not mistaken for a choice.

No torch here: :func:`apply` must run before torch is imported (libgomp reads the wait policy once,
when it starts); the worker then calls ``torch.set_num_threads(policy.threads)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

USER_MARK = "ENVDOCTOR_USER_OMP"  # names of the OMP_* variables the user set, comma separated
OMP_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")


@dataclass(frozen=True)
class ThreadPolicy:
    threads: int
    wait_policy: str
    cpus: int  # CPUs this process may use
    local_ranks: int  # training processes sharing them
    source: str  # "user" (both set by the user), "chosen", or "user threads" / "user wait policy"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def allowed_cpus() -> int:
    """CPUs this process may run on (affinity mask), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_ranks(environ: Mapping[str, str]) -> int:
    """Training processes on this node: torchrun's LOCAL_WORLD_SIZE, else Slurm's tasks per node."""
    for key in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        if environ.get(key, "").isdigit() and int(environ[key]) > 0:
            return int(environ[key])
    # SLURM_TASKS_PER_NODE looks like "2(x3),1": the first count is this node's when nodes agree
    match = re.match(r"(\d+)", environ.get("SLURM_TASKS_PER_NODE", ""))
    return max(1, int(match.group(1))) if match else 1


def user_set(environ: Mapping[str, str]) -> set[str]:
    """The OMP_* variables the user set: from the runner's mark when present, else what is set."""
    if USER_MARK in environ:
        return {v for v in environ[USER_MARK].split(",") if v in OMP_VARS}
    return {v for v in OMP_VARS if environ.get(v)}


def user_mark(environ: Mapping[str, str]) -> str:
    """The value of ``ENVDOCTOR_USER_OMP`` for child processes started from this environment."""
    return ",".join(sorted(user_set(environ)))


def choose(environ: Mapping[str, str], cpus: int | None = None) -> ThreadPolicy:
    """The policy for one training process given its environment and usable CPUs."""
    cpus = cpus or allowed_cpus()
    ranks = local_ranks(environ)
    mine = user_set(environ)
    threads = max(1, cpus // ranks)
    if "OMP_NUM_THREADS" in mine:
        match = re.match(r"\s*(\d+)", environ.get("OMP_NUM_THREADS", ""))
        threads = max(1, int(match.group(1))) if match else threads
    wait = environ.get("OMP_WAIT_POLICY", "").upper() if "OMP_WAIT_POLICY" in mine else "PASSIVE"
    wait = wait or "PASSIVE"
    source = {0: "chosen", 2: "user"}.get(
        len(mine), "user threads" if "OMP_NUM_THREADS" in mine else "user wait policy"
    )
    return ThreadPolicy(threads, wait, cpus, ranks, source)


def apply(environ: MutableMapping[str, str] | None = None) -> ThreadPolicy:
    """Choose the policy and write it into the environment (before torch is imported)."""
    environ = os.environ if environ is None else environ
    policy = choose(environ)
    environ[USER_MARK] = user_mark(environ)  # the next process (a re-exec, a child) keeps the origin
    environ["OMP_NUM_THREADS"] = str(policy.threads)
    environ["OMP_WAIT_POLICY"] = policy.wait_policy
    return policy
