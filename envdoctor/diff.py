"""Compare two facts snapshots (``check --json`` files) and say which differences matter.

Multi-node training needs the same torch build, NCCL, CUDA major, driver branch and Python minor on
every node: a difference there is *breaking* (exit 1). Other differences (library versions, GPU
models, environment variables) are listed. Noise is ignored: timings, probe errors, paths of the probed
interpreter and libraries, per-node ranks and host names.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from envdoctor.facts import Facts

# Facts paths that differ between identical nodes (prefix match on the dotted path).
NOISE_PREFIXES = (
    "timings",
    "probe_errors",
    "envdoctor_version",
    "origin",
    "error_lines",
    "python.executable",
    "python.prefix",
    "cuda.nvcc_path",
    "cuda.libraries",
    "packages.torch_installs",
    "packages.unmet",
    "system.memory_total_mib",
    "system.cpu_count",
    "docker",
)
NOISE_WORDS = re.compile(
    r"(?:^|[._\[])(?:free|used|time|timestamp|uptime|pid|hostname|host|location|path)\b", re.I
)
# Environment variables that legitimately differ per node or per rank.
NOISE_ENV = re.compile(
    r"^(?:HOSTNAME|HOST|.*RANK|.*_NODEID|SLURM_\w*(?:ID|NODENAME|NODELIST)|SLURMD_NODENAME|PMI_\w+|"
    r"OMPI_COMM_WORLD_\w+|MASTER_ADDR|NCCL_SOCKET_IFNAME|CUDA_VISIBLE_DEVICES|PATH)$"
)


@dataclass
class Difference:
    path: str
    a: Any
    b: Any
    breaking: bool
    reason: str = ""


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _gpu_models(facts: Facts) -> list[str] | None:
    gpus = facts.nvidia.gpus
    return None if gpus is None else sorted(g.name for g in gpus)


def _major(version: Any, parts: int = 1) -> str | None:
    if not isinstance(version, str) or not version:
        return None
    nums = re.findall(r"\d+", version)
    return ".".join(nums[:parts]) if len(nums) >= parts else None


def _nccl(facts: Facts) -> str | None:
    wheels = facts.packages.nvidia_wheels or {}
    wheel = next((v for k, v in wheels.items() if k.startswith("nvidia-nccl")), None)
    return facts.torch.nccl_version or wheel


# (label, reader, breaking reason): facts whose difference breaks multi-node training.
BREAKING: tuple[tuple[str, Any, str], ...] = (
    (
        "torch version",
        lambda f: f.torch.version or (f.packages.torch_build or {}).get("version"),
        "torch build",
    ),
    ("torch CUDA", lambda f: f.torch.cuda or (f.packages.torch_build or {}).get("cuda"), "torch build"),
    ("NCCL", _nccl, "NCCL version"),
    ("CUDA major (torch)", lambda f: _major(f.torch.cuda), "CUDA major"),
    ("CUDA major (driver)", lambda f: _major(f.nvidia.cuda_driver_version), "CUDA major"),
    ("driver branch", lambda f: _major(f.nvidia.driver_version), "driver branch"),
    ("python minor", lambda f: _major(f.python.version, 2), "python minor"),
)


def compare(a: Facts, b: Facts) -> list[Difference]:
    """Differences between two snapshots that matter; breaking ones first."""
    out: list[Difference] = []
    for label, read, reason in BREAKING:
        va, vb = read(a), read(b)
        if va != vb and va is not None and vb is not None:
            out.append(Difference(label, va, vb, True, reason))
    # Compared above; the full driver and Python versions are still listed below (550.54 vs 550.90).
    covered = {"torch.version", "torch.cuda", "torch.nccl_version", "nvidia.cuda_driver_version"}
    ga, gb = _gpu_models(a), _gpu_models(b)
    if ga != gb:
        out.append(Difference("GPU models", ga, gb, False))
    fa, fb = _flat(_plain(a)), _flat(_plain(b))
    for path in sorted(set(fa) | set(fb)):
        if path in covered or path.startswith(NOISE_PREFIXES) or NOISE_WORDS.search(path):
            continue
        if path.startswith("system.env.") and NOISE_ENV.match(path.removeprefix("system.env.")):
            continue
        va, vb = fa.get(path), fb.get(path)
        if va != vb:
            out.append(Difference(path, va, vb, False))
    return out


def _plain(facts: Facts) -> dict[str, Any]:
    """The facts as a dict with GPUs left out (compared as a model list) and lists kept whole."""
    data = asdict(facts)
    data["nvidia"].pop("gpus", None)
    return data


def breaking(diffs: list[Difference]) -> bool:
    return any(d.breaking for d in diffs)


def to_dict(diffs: list[Difference]) -> list[dict[str, Any]]:
    return [asdict(d) for d in diffs]


def render(results: list[tuple[str, list[Difference]]], reference: str) -> str:
    """Plain text: identical snapshots summarised in one line, differences listed per snapshot."""
    out: list[str] = []
    same = [name for name, diffs in results if not diffs]
    if same:
        out.append(f"{len(same)} snapshot(s) match {reference}: {', '.join(same)}")
    for name, diffs in results:
        if not diffs:
            continue
        verdict = "BREAKS multi-node training" if breaking(diffs) else "differs (not breaking)"
        out.append(f"{name} vs {reference}: {verdict}")
        for d in diffs:
            mark = "✗" if d.breaking else "·"
            why = f"  [{d.reason}]" if d.reason else ""
            out.append(f"  {mark} {d.path}: {_show(d.a)} -> {_show(d.b)}{why}")
    return "\n".join(out) + "\n"


def _show(value: Any) -> str:
    return "unknown" if value is None else str(value)
