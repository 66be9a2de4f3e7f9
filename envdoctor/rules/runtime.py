"""Runtime environment-variable rules: the CUDA caching allocator config and CUDA_VISIBLE_DEVICES.

Facts read: nvidia, system, torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from envdoctor.facts import Facts
from envdoctor.findings import Finding, SetEnv, Severity
from envdoctor.rules import rule

ALLOC_SOURCES = (
    "https://github.com/pytorch/pytorch/blob/main/c10/core/AllocatorConfig.cpp",
    "https://github.com/pytorch/pytorch/blob/main/c10/cuda/CUDAAllocatorConfig.cpp",
    "https://docs.pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage-with-pytorch-alloc-conf",
)
ALLOC_VARS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")
VISIBLE_SOURCE = "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#cuda-environment-variables"
MB_FLOOR = 20  # kLargeBuffer / 1 MiB: max_split_size_mb and max_non_split_rounding_mb minimum


def _int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text) else None


def _power_of_two(n: int | None) -> bool:
    return n is not None and n > 0 and n & (n - 1) == 0


def _check_bool(value: str) -> str | None:
    return None if value in ("True", "False") else f"expects True or False (case-sensitive), got {value!r}"


def _check_split_mb(value: str) -> str | None:
    n = _int(value)
    return (
        None if n is not None and n >= MB_FLOOR else f"expects an integer >= {MB_FLOOR} (MB), got {value!r}"
    )


def _check_size_mb(value: str) -> str | None:
    return None if _int(value) is not None else f"expects a non-negative integer (MB), got {value!r}"


def _check_positive_mb(value: str) -> str | None:
    n = _int(value)
    return None if n is not None and n > 0 else f"expects an integer > 0 (MB), got {value!r}"


def _check_fraction_open(value: str) -> str | None:
    try:
        ok = 0.0 < float(value) < 1.0
    except ValueError:
        ok = False
    return None if ok else f"expects a number in (0, 1), got {value!r}"


def _check_fraction_closed(value: str) -> str | None:
    try:
        ok = 0.0 <= float(value) <= 1.0
    except ValueError:
        ok = False
    return None if ok else f"expects a number in [0, 1], got {value!r}"


def _check_backend(value: str) -> str | None:
    return (
        None
        if value in ("native", "cudaMallocAsync")
        else f"expects native or cudaMallocAsync, got {value!r}"
    )


def _check_threads(value: str) -> str | None:
    n = _int(value)
    return (
        None
        if n is not None and _power_of_two(n) and n <= 128
        else f"expects a power of 2 up to 128, got {value!r}"
    )


def _check_roundup(value: str | list[tuple[str, str]]) -> str | None:
    if isinstance(value, str):
        return (
            None
            if _power_of_two(_int(value))
            else f"expects a power of 2 or a [interval:divisions,...] list, got {value!r}"
        )
    for interval, divisions in value:
        if interval != ">" and not _power_of_two(_int(interval)):
            return f"interval {interval!r} is not a power of 2 (MB)"
        n = _int(divisions)
        if n is None or (n != 0 and not _power_of_two(n)):
            return f"divisions {divisions!r} for {interval!r} must be 0 or a power of 2"
    return None


# Key -> value check, from c10/core/AllocatorConfig.cpp (generic keys) and
# c10/cuda/CUDAAllocatorConfig.cpp (CUDA keys, plus the ROCm spellings torch accepts too).
ALLOC_KEYS: dict[str, Callable] = {
    "max_split_size_mb": _check_split_mb,
    "max_non_split_rounding_mb": _check_split_mb,
    "large_segment_size_mb": _check_positive_mb,
    "garbage_collection_threshold": _check_fraction_open,
    "roundup_power2_divisions": _check_roundup,
    "expandable_segments": _check_bool,
    "pinned_use_background_threads": _check_bool,
    "pinned_max_round_threshold_mb": _check_size_mb,
    "pinned_max_cached_size_mb": _check_size_mb,
    "backend": _check_backend,
    "release_lock_on_cudamalloc": _check_bool,
    "release_lock_on_hipmalloc": _check_bool,
    "pinned_use_cuda_host_register": _check_bool,
    "pinned_use_hip_host_register": _check_bool,
    "pinned_num_register_threads": _check_threads,
    "pinned_reserve_segment_size_mb": _check_positive_mb,
    "graph_capture_record_stream_reuse": _check_bool,
    "per_process_memory_fraction": _check_fraction_closed,
    "pinned_free_catch_all": _check_bool,
    "throw_on_cudamalloc_oom": _check_bool,
}
# Options of the native allocator that backend:cudaMallocAsync ignores (torch warns about it).
NATIVE_ONLY = ("max_split_size_mb", "roundup_power2_divisions", "garbage_collection_threshold")


@dataclass
class AllocConf:
    """A parsed allocator config: the valid ``key:value`` entries and one line per problem."""

    entries: list[tuple[str, str]]  # (key, value as written) of the entries that are valid
    problems: list[str]


def _tokens(text: str) -> list[str]:
    """torch's lexer: ``, : [ ]`` are tokens of their own, spaces are dropped, the rest joins."""
    out: list[str] = []
    buf = ""
    for ch in text:
        if ch in ",:[]":
            if buf:
                out.append(buf)
                buf = ""
            out.append(ch)
        elif ch != " ":
            buf += ch
    if buf:
        out.append(buf)
    return out


def parse_alloc_conf(text: str) -> AllocConf:
    """Check ``PYTORCH_(CUDA_)ALLOC_CONF`` the way torch parses it, collecting every problem.

    Grammar: ``key:value`` entries separated by commas; ``roundup_power2_divisions`` also takes
    ``[interval:divisions,...,>:divisions]``. torch stops at the first problem and raises when
    the CUDA allocator first initialises; here every entry is checked so that the fix can keep
    the valid ones.
    """
    toks, i = _tokens(text), 0
    conf = AllocConf([], [])
    while i < len(toks):
        key = toks[i]
        if key == ",":  # torch tolerates empty entries ("a:1,,b:2" and a trailing comma)
            i += 1
            continue
        if i + 1 >= len(toks) or toks[i + 1] != ":":
            conf.problems.append(f"{key!r} is not key:value (entries are key:value,key:value)")
            break
        if i + 2 >= len(toks) or toks[i + 2] in (",", ":", "]"):
            conf.problems.append(f"{key!r} has no value")
            break
        i += 2
        value: str | list[tuple[str, str]]
        if toks[i] == "[":
            listed, i = _list_value(toks, i, conf)
            if listed is None:
                break
            value = listed
        else:
            value = toks[i]
            i += 1
        check = ALLOC_KEYS.get(key)
        problem = f"unknown key {key!r}" if check is None else check(value)
        written = value if isinstance(value, str) else "[" + ",".join(f"{a}:{b}" for a, b in value) + "]"
        if problem:
            conf.problems.append(f"{key}: {problem}" if check else problem)
        else:
            conf.entries.append((key, written))
        if i < len(toks) and toks[i] != ",":
            conf.problems.append(f"expected ',' after {key}:{written}, got {toks[i]!r}")
            break
    return conf


def _list_value(toks: list[str], i: int, conf: AllocConf) -> tuple[list[tuple[str, str]] | None, int]:
    """Parse ``[a:b,c:d]`` starting at ``toks[i] == "["``; returns the pairs and the next index."""
    pairs: list[tuple[str, str]] = []
    i += 1
    while i < len(toks) and toks[i] != "]":
        if i + 2 >= len(toks) or toks[i + 1] != ":":
            conf.problems.append("malformed [interval:divisions,...] list")
            return None, i
        pairs.append((toks[i], toks[i + 2]))
        i += 3
        if i < len(toks) and toks[i] == ",":
            i += 1
    if i >= len(toks):
        conf.problems.append("list is missing its closing ']'")
        return None, i
    return pairs, i + 1


def _conf_fix(name: str, conf: AllocConf) -> SetEnv:
    value = ",".join(f"{k}:{v}" for k, v in conf.entries)
    return SetEnv(name, value or None)


@rule(
    "alloc-conf-invalid",
    name="Invalid PyTorch allocator config",
    severity=Severity.ERROR,
    area="torch",
    summary="PYTORCH_CUDA_ALLOC_CONF / PYTORCH_ALLOC_CONF that torch rejects at the first CUDA allocation.",
    fix="Set the variable to valid key:value entries (envdoctor keeps the valid ones) or unset it.",
    sources=ALLOC_SOURCES,
    verify="python -c \"import torch; torch.zeros(1, device='cuda')\"",
)
def alloc_conf_invalid(facts: Facts) -> Iterator[Finding]:
    """Detects a ``PYTORCH_ALLOC_CONF`` / ``PYTORCH_CUDA_ALLOC_CONF`` value torch rejects, the two
    set to different values, or options the chosen allocator ignores.

    Why: torch parses ``PYTORCH_ALLOC_CONF`` (the generic name; ``PYTORCH_CUDA_ALLOC_CONF`` is the
    older alias) only when the CUDA caching allocator initialises, so a typo passes ``import
    torch`` and kills the job at its first ``.cuda()``: "Unrecognized key 'x' in CUDA allocator
    config", "Expected 'True' or 'False'", "max_split_size_mb too small, must be >= 20",
    "garbage_collect_threshold is invalid, set it in (0.0, 1.0)", or an internal assert for
    ``key=value``. Keys and value checks follow c10/core/AllocatorConfig.cpp and
    c10/cuda/CUDAAllocatorConfig.cpp (``expandable_segments`` wants ``True``/``False`` exactly,
    ``roundup_power2_divisions`` a power of 2 or ``[256:1,>:8]``, ``pinned_num_register_threads``
    a power of 2 up to 128).
    Severity: error for a value torch rejects. Warning when both variables are set to different
    values: CUDA-specific keys are read from PYTORCH_CUDA_ALLOC_CONF first while the generic ones
    come from PYTORCH_ALLOC_CONF, and torch before the rename reads only the CUDA name. Info when
    ``backend:cudaMallocAsync`` is combined with native-allocator options it ignores.
    Fix: the variable rewritten with only its valid entries (unset if none is left); with both
    set, every valid option moves to PYTORCH_ALLOC_CONF (its value wins) and the alias is unset.
    """
    env = facts.system.env
    if env is None:
        return
    confs = {n: parse_alloc_conf(env[n]) for n in ALLOC_VARS if env.get(n, "").strip()}
    old, new = env.get(ALLOC_VARS[0]), env.get(ALLOC_VARS[1])
    both_differ = len(confs) == 2 and old.replace(" ", "") != new.replace(" ", "")  # type: ignore[union-attr]
    if both_differ:
        # One target state for every finding: all options in PYTORCH_ALLOC_CONF, the alias unset.
        merged = dict(confs[ALLOC_VARS[0]].entries) | dict(confs[ALLOC_VARS[1]].entries)
        value = ",".join(f"{k}:{v}" for k, v in merged.items())
        actions = [SetEnv(ALLOC_VARS[1], value or None), SetEnv(ALLOC_VARS[0], None)]
    for name, conf in confs.items():
        text = env[name]
        if conf.problems:
            fixed = actions if both_differ else [_conf_fix(name, conf)]
            target = fixed[0]
            yield alloc_conf_invalid.finding(
                f"{name}={text!r} is rejected by torch: {'; '.join(conf.problems)}",
                evidence={f"system.env.{name}": text},
                fix=f"export {target.name}={target.value}" if target.value else f"unset {target.name}",
                actions=list(fixed),
            )
        keys = {k for k, _ in conf.entries}
        if ("backend", "cudaMallocAsync") in conf.entries and keys & set(NATIVE_ONLY):
            ignored = sorted(keys & set(NATIVE_ONLY))
            yield alloc_conf_invalid.finding(
                f"{name}: backend:cudaMallocAsync ignores {', '.join(ignored)}",
                severity=Severity.INFO,
                evidence={f"system.env.{name}": text},
                fix=f"Drop {', '.join(ignored)} from {name} or use the native backend.",
                actions=[],
            )
    if both_differ:
        yield alloc_conf_invalid.finding(
            (
                f"PYTORCH_CUDA_ALLOC_CONF={old!r} and PYTORCH_ALLOC_CONF={new!r} differ: which one "
                "applies depends on the key and the torch version"
            ),
            severity=Severity.WARNING,
            evidence={"system.env.PYTORCH_CUDA_ALLOC_CONF": old, "system.env.PYTORCH_ALLOC_CONF": new},
            fix=f"export PYTORCH_ALLOC_CONF={actions[0].value}; unset PYTORCH_CUDA_ALLOC_CONF",
            actions=list(actions),
        )


def visible_gpu_count(value: str, gpu_count: int) -> int | None:
    """How many GPUs CUDA exposes for ``CUDA_VISIBLE_DEVICES=value``; None if it names UUIDs.

    CUDA reads the comma-separated list up to the first invalid entry (an index out of range,
    ``-1``, garbage); an empty value hides every device.
    """
    seen: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if item.startswith(("GPU-", "MIG-")):
            return None
        if not re.fullmatch(r"\d+", item) or int(item) >= gpu_count or int(item) in seen:
            break
        seen.append(int(item))
    return len(seen)


@rule(
    "cuda-visible-devices-empty",
    name="CUDA_VISIBLE_DEVICES hides every GPU",
    severity=Severity.WARNING,
    area="torch",
    summary="CUDA_VISIBLE_DEVICES is empty, -1 or lists no valid GPU index although GPUs exist.",
    fix="unset CUDA_VISIBLE_DEVICES (or list valid indices such as 0,1).",
    sources=(VISIBLE_SOURCE,),
)
def cuda_visible_devices_empty(facts: Facts) -> Iterator[Finding]:
    """Detects a ``CUDA_VISIBLE_DEVICES`` that hides every GPU the driver sees: ``""``, ``-1``,
    ``none``, or an index past the last GPU. Needs the driver's GPU list (NVML) to know the GPUs
    exist; GPU UUID lists are not judged.

    Why: CUDA enumerates only the devices listed in ``CUDA_VISIBLE_DEVICES`` and stops at the
    first invalid entry, so torch is left with ``torch.cuda.is_available() == False`` on a machine
    whose driver sees GPUs. Schedulers and notebooks set this silently (``CUDA_VISIBLE_DEVICES=""``
    to "free" a GPU).
    Fix: unset the variable or list valid indices.
    """
    value = (facts.system.env or {}).get("CUDA_VISIBLE_DEVICES")
    gpus = facts.nvidia.gpus
    if value is None or not gpus:
        return
    visible = visible_gpu_count(value, len(gpus))
    if visible != 0:
        return
    yield cuda_visible_devices_empty.finding(
        f"CUDA_VISIBLE_DEVICES={value!r} hides all {len(gpus)} GPU(s) the driver sees",
        evidence={
            "system.env.CUDA_VISIBLE_DEVICES": value,
            "nvidia.gpus": [g.name for g in gpus],
            "torch.device_count": facts.torch.device_count,
        },
        fix="unset CUDA_VISIBLE_DEVICES",
        actions=[SetEnv("CUDA_VISIBLE_DEVICES", None)],
    )
