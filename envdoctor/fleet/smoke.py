"""``fleet smoke --slurm``: one multi-node smoke-train through sbatch, and every node's verdict gathered.

The batch script starts one ``smoke-train --json`` per node with srun; they meet at a torchrun c10d
rendezvous on the first node of the job (``--rdzv-id $SLURM_JOB_ID``; c10d ignores --node-rank, so
global rank 0 may land on any node and each node reports its own verdict). Each node's JSON lands in
``OUT/<node>.json``. The fleet verdict: every node passed and agrees, the all-reduce bus bandwidth, and
each node's local step time against the median, flagging nodes slower than ``slow_factor`` x median.
"""

from __future__ import annotations

import json
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor.fleet.hostlist import compress
from envdoctor.fleet.slurm import Allocation

SLOW_FACTOR = 1.5


def sbatch_script(
    alloc: Allocation, out: Path, nproc: int, envdoctor: list[str], train_args: list[str], port: int = 29500
) -> str:
    """The batch script: find the first node's address, then srun one smoke-train per node."""
    out = out.resolve()
    smoke = [*envdoctor, "smoke-train", "--json", "--nproc", str(nproc), "--nnodes", str(alloc.nodes)]
    smoke += ["--rdzv-endpoint", f"$ENVDOCTOR_RDZV_HOST:{port}", "--rdzv-id", "$SLURM_JOB_ID", *train_args]
    # Node-dependent paths are expanded on each node, by its own shell.
    per_node = " ".join(shlex.quote(a) if "$" not in a else f'"{a}"' for a in smoke)
    node = f'{shlex.quote(str(out))}/"$SLURMD_NODENAME"'
    per_node += f" --out {node} > {node}.json 2> {node}.log"
    header = "\n".join(f"#SBATCH {opt}" for opt in [*alloc.options(), f"--output={out}/slurm-%j.out"])
    return f"""#!/bin/sh
{header}
# The rendezvous: the first node of the job, at the address Slurm reaches it by (NodeAddr).
first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
ENVDOCTOR_RDZV_HOST=$(scontrol show node "$first" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')
export ENVDOCTOR_RDZV_HOST
echo "rendezvous on $first ($ENVDOCTOR_RDZV_HOST:{port}), job $SLURM_JOB_ID, nodes $SLURM_JOB_NODELIST"
srun --nodes={alloc.nodes} --ntasks-per-node=1 sh -c {shlex.quote(per_node)}
"""


@dataclass
class NodeRun:
    name: str
    ok: bool | None  # None: no verdict (the node's smoke-train wrote nothing readable)
    failed: list[str] = field(default_factory=list)  # names of failed checks, or the finding id
    step_s: float | None = None
    busbw_gbps: float | None = None
    rank: int | None = None
    checksums: tuple[str, ...] = ()  # the final parameter checksum of each precision, as this node saw it


@dataclass
class SmokeVerdict:
    expected: int
    nodes: list[NodeRun]
    slow: list[str]
    median_step_s: float | None
    slow_factor: float

    @property
    def missing(self) -> int:
        return max(0, self.expected - len(self.nodes))

    @property
    def agree(self) -> bool:
        """Every node ended with the same weights (data parallel: they must)."""
        return len({n.checksums for n in self.nodes if n.ok is not None}) <= 1

    @property
    def ok(self) -> bool:
        return not self.missing and not self.slow and self.agree and all(n.ok for n in self.nodes)


def read_node(path: Path) -> NodeRun:
    name = path.stem
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return NodeRun(name, None, ["no verdict (see the node's .log)"])
    if not isinstance(data, dict) or "ok" not in data:
        return NodeRun(name, None, ["no verdict"])
    if "checks" not in data:  # stopped before training: {"ok": false, "finding": id, "detail": ...}
        return NodeRun(name, False, [f"{data.get('finding')}: {data.get('detail', '')}"])
    result = data.get("result") or {}
    figures: dict[str, Any] = result.get("node") or {}
    return NodeRun(
        name,
        bool(data["ok"]),
        [c["name"] for c in data["checks"] if c.get("ok") is False],
        figures.get("local_step_s"),
        figures.get("allreduce_busbw_gbps"),
        (result.get("environment") or {}).get("rank"),
        tuple(str((r.get("checksums") or [None])[0]) for r in result.get("runs") or []),
    )


def gather(out: Path, expected: int, slow_factor: float = SLOW_FACTOR) -> SmokeVerdict:
    nodes = [read_node(p) for p in sorted(out.glob("*.json"))]
    steps = [n.step_s for n in nodes if n.step_s]
    median = statistics.median(steps) if steps else None
    slow = [n.name for n in nodes if median and n.step_s and n.step_s > slow_factor * median]
    return SmokeVerdict(expected, nodes, slow, median, slow_factor)


def render_text(v: SmokeVerdict) -> str:
    passed = sum(1 for n in v.nodes if n.ok)
    head = f"envdoctor fleet smoke: {v.expected} node(s), {len(v.nodes)} reported, {passed} passed"
    if v.missing:
        head += f", {v.missing} missing"
    out = [
        head,
        f"  {'node':<12} {'verdict':<8} {'rank':>4} {'local step':>11} {'x median':>9} {'all-reduce':>12}",
    ]
    for n in v.nodes:
        verdict = "pass" if n.ok else "FAIL" if n.ok is False else "unknown"
        step = f"{n.step_s * 1000:.1f} ms" if n.step_s else "-"
        ratio = f"{n.step_s / v.median_step_s:.2f}x" if n.step_s and v.median_step_s else "-"
        bw = f"{n.busbw_gbps:.2f} GB/s" if n.busbw_gbps is not None else "-"
        rank = str(n.rank) if n.rank is not None else "-"
        out.append(f"  {n.name:<12} {verdict:<8} {rank:>4} {step:>11} {ratio:>9} {bw:>12}")
        out += [f"      ✗ {reason}" for reason in n.failed]
    slow = compress(v.slow) if v.slow else "none"
    out.append(f"Slow nodes (local step > {v.slow_factor:g} x median): {slow}")
    attention = sorted({n.name for n in v.nodes if not n.ok} | set(v.slow))
    if attention:
        out.append(f"Keep them out of jobs: --exclude={compress(attention)}")
    if not v.agree:
        out.append("✗ the nodes ended with different weights (parameter checksums differ)")
    out.append("verdict: " + ("every node passed and agrees" if v.ok else "FAILED"))
    return "\n".join(out) + "\n"


def to_dict(v: SmokeVerdict) -> dict[str, Any]:
    return {
        "ok": v.ok,
        "expected": v.expected,
        "missing": v.missing,
        "median_local_step_s": v.median_step_s,
        "slow_factor": v.slow_factor,
        "slow": v.slow,
        "agree": v.agree,
        "nodes": [n.__dict__ for n in v.nodes],
    }
