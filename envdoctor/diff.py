"""Compare two facts snapshots (``check --json`` files) and say which differences matter.

Multi-node training needs the same torch build, NCCL, CUDA major, driver branch and Python minor on
every node: a difference there is *breaking* (exit 1). Other differences (library versions, GPU
models, environment variables) are listed. Noise is ignored: timings, probe errors, paths of the probed
interpreter and libraries, per-node ranks and host names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from envdoctor.facts import Facts
from envdoctor.readers import torch_build_version, torch_cuda

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


def _gpus(facts: Facts) -> list[Any] | None:
    """The GPUs training sees: torch's devices when torch was asked, else the driver's list."""
    if facts.torch.devices is not None:
        return facts.torch.devices
    return _driver_gpus(facts)


def _driver_gpus(facts: Facts) -> list | None:
    """The driver's GPU list; no NVIDIA driver at all counts as no GPU (a CPU node), not as unknown."""
    if facts.nvidia.gpus is None and facts.nvidia.error == "driver-missing":
        return []
    return facts.nvidia.gpus


def _gpu_models(facts: Facts) -> str | None:
    gpus = _gpus(facts)
    return None if gpus is None else ", ".join(sorted({g.name for g in gpus})) or "none"


def _capabilities(facts: Facts) -> str | None:
    gpus = _gpus(facts)
    if gpus is None:
        return None
    caps = {getattr(g, "capability", None) or getattr(g, "compute_capability", None) for g in gpus}
    if None in caps:
        return None
    return ", ".join(sorted(c for c in caps if c is not None)) or "none"


def _gpu_count(facts: Facts) -> int | None:
    if facts.torch.device_count is not None:
        return facts.torch.device_count
    gpus = _driver_gpus(facts)
    return len(gpus) if gpus is not None else None


def _major(version: Any, parts: int = 1) -> str | None:
    if not isinstance(version, str) or not version:
        return None
    nums = re.findall(r"\d+", version)
    return ".".join(nums[:parts]) if len(nums) >= parts else None


def _nccl(facts: Facts) -> str | None:
    wheels = facts.packages.nvidia_wheels or {}
    wheel = next((v for k, v in wheels.items() if k.startswith("nvidia-nccl")), None)
    if facts.torch.nccl_version or wheel:
        return facts.torch.nccl_version or wheel
    return "none" if _torch_cuda(facts) == "none" else None  # a CPU build of torch has no NCCL


def _torch_missing(facts: Facts) -> bool:
    """torch failed to import as missing, or (``--quick``: not imported) no distribution provides it."""
    return facts.torch.status == "missing" or (
        facts.torch.status in ("skipped", "unknown") and facts.packages.torch_installs == []
    )


def _torch_version(facts: Facts) -> str | None:
    if _torch_missing(facts):
        return NOT_INSTALLED
    return torch_build_version(facts)


def _torch_cuda(facts: Facts) -> str | None:
    if facts.torch.status == "ok" or facts.packages.torch_build:
        return torch_cuda(facts) or "none"  # a CPU build: known, no CUDA
    return None


def _driver(facts: Facts, value: str | None) -> str | None:
    """A driver fact, or "none" on a node without an NVIDIA driver (known: there is none)."""
    return "none" if value is None and facts.nvidia.error == "driver-missing" else value


def _cuda_major(cuda: str | None) -> str | None:
    return cuda if cuda == "none" else _major(cuda)


def _container(facts: Facts) -> str | None:
    s = facts.system
    return s.container_kind or ("none" if s.in_container is False else None)


NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class BreakingKey:
    """A fact that must be the same on every node of a multi-node job."""

    label: str
    read: Callable[[Facts], Any]
    reason: str
    covers: tuple[str, ...] = ()  # fact paths it stands for (not listed again among other differences)
    # Read from torch itself: where torch is not installed the value is "not installed", and `diff`
    # shows the torch version row alone rather than every consequence of it.
    of_torch: bool = False

    def value(self, facts: Facts) -> Any:
        return NOT_INSTALLED if self.of_torch and _torch_missing(facts) else self.read(facts)


# Facts whose difference breaks (or silently slows) multi-node training. One reader per key, shared by
# `diff` and `fleet report`.
BREAKING: tuple[BreakingKey, ...] = (
    BreakingKey("torch version", _torch_version, "torch build", ("torch.version", "torch.status")),
    BreakingKey("torch CUDA", _torch_cuda, "torch build", ("torch.cuda",), of_torch=True),
    BreakingKey("NCCL", _nccl, "NCCL version", ("torch.nccl_version",), of_torch=True),
    BreakingKey("CUDA major (torch)", lambda f: _cuda_major(_torch_cuda(f)), "CUDA major", of_torch=True),
    BreakingKey(
        "CUDA major (driver)",
        lambda f: _driver(f, _major(f.nvidia.cuda_driver_version)),
        "CUDA major",
        ("nvidia.cuda_driver_version",),
    ),
    BreakingKey("driver branch", lambda f: _driver(f, _major(f.nvidia.driver_version)), "driver branch"),
    BreakingKey("python minor", lambda f: _major(f.python.version, 2), "python minor"),
    BreakingKey(
        "CUDA available",
        lambda f: f.torch.cuda_available,
        "GPU visible to torch",
        ("torch.cuda_available",),
        of_torch=True,
    ),
    BreakingKey("GPU count", _gpu_count, "GPU count", ("torch.device_count",)),
    BreakingKey("GPU model", _gpu_models, "GPU model"),
    BreakingKey("compute capability", _capabilities, "compute capability"),
    BreakingKey("container runtime", _container, "container runtime", ("system.container_kind",)),
)
COVERED = frozenset(path for key in BREAKING for path in key.covers)


def breaking_values(facts: Facts) -> dict[str, Any]:
    """Every breaking key's value on one node (None: unknown)."""
    return {key.label: key.value(facts) for key in BREAKING}


def compare(a: Facts, b: Facts) -> list[Difference]:
    """Differences between two snapshots that matter; breaking ones first.

    A breaking key known on one side and unknown on the other is breaking too: the node that could not
    say is not known to match.
    """
    out: list[Difference] = []
    torch_missing = _torch_missing(a) != _torch_missing(b)
    for key in BREAKING:
        va, vb = key.value(a), key.value(b)
        if va != vb and not (torch_missing and key.of_torch):
            out.append(Difference(key.label, va, vb, True, key.reason))
    fa, fb = _flat(_plain(a)), _flat(_plain(b))
    for path in sorted(set(fa) | set(fb)):
        if path in COVERED or path.startswith(NOISE_PREFIXES) or NOISE_WORDS.search(path):
            continue
        if torch_missing and path.startswith("torch."):
            continue  # every torch fact follows from the torch version row
        if path.startswith("system.env.") and NOISE_ENV.match(path.removeprefix("system.env.")):
            continue
        va, vb = fa.get(path), fb.get(path)
        if va != vb:
            out.append(Difference(path, va, vb, False))
    return out


def _plain(facts: Facts) -> dict[str, Any]:
    """The facts as a dict with GPUs left out (compared as breaking keys) and lists kept whole."""
    data = asdict(facts)
    data["nvidia"].pop("gpus", None)
    data["torch"].pop("devices", None)
    return data


def breaking(diffs: list[Difference]) -> bool:
    return any(d.breaking for d in diffs)


def to_dict(diffs: list[Difference]) -> list[dict[str, Any]]:
    return [asdict(d) for d in diffs]


def is_package(d: Difference) -> bool:
    return d.path.startswith("packages.")


def render(results: list[tuple[str, list[Difference]]], reference: str, verbose: bool = False) -> str:
    """Plain text: identical snapshots in one line; per snapshot the breaking keys first, then other
    differences; package versions only with ``verbose`` (a count otherwise)."""
    out: list[str] = []
    same = [name for name, diffs in results if not diffs]
    if same:
        out.append(f"{len(same)} snapshot(s) match {reference}: {', '.join(same)}")
    for name, diffs in results:
        if not diffs:
            continue
        verdict = "BREAKS multi-node training" if breaking(diffs) else "differs (not breaking)"
        out.append(f"{name} vs {reference}: {verdict}")
        packages = [d for d in diffs if is_package(d) and not d.breaking]
        for d in diffs:
            if d.breaking or verbose or not is_package(d):
                mark = "✗" if d.breaking else "·"
                why = f"  [{d.reason}]" if d.reason else ""
                out.append(f"  {mark} {d.path}: {_show(d.a, d)} -> {_show(d.b, d)}{why}")
        if packages and not verbose:
            out.append(f"  · {len(packages)} package version(s) differ (-v lists them)")
    return "\n".join(out) + "\n"


def _show(value: Any, d: Difference) -> str:
    if value is None:
        return NOT_INSTALLED if is_package(d) else "unknown"
    return str(value)
