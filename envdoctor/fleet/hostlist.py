"""Slurm host lists: ``node[017,042-044]`` from a set of names, and back.

Admins paste these into ``scontrol``, ``srun --exclude=`` and ``sinfo -n``, so the format is Slurm's own:
a common prefix, then a bracket of numbers and ranges that keep their zero padding.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_PART = re.compile(r"([^,\[]+)(?:\[([^\]]*)\])?(?:,|$)")


def compress(names: Iterable[str]) -> str:
    """``["node017", "node042", "node043", "node044"]`` -> ``node[017,042-044]`` (sorted, deduplicated)."""
    digits: dict[str, set[str]] = defaultdict(set)
    plain: set[str] = set()
    for name in names:
        m = _NUMBERED.match(name)
        if m:
            digits[m.group(1)].add(m.group(2))
        else:
            plain.add(name)
    # Width 0: unpadded (n9, n10 -> n[9-10]); a zero-padded width joins every number of that width.
    groups: dict[tuple[str, int], set[int]] = defaultdict(set)
    for prefix, found in digits.items():
        padded = {len(d) for d in found if len(d) > 1 and d[0] == "0"}
        for d in found:
            groups[(prefix, len(d) if len(d) in padded else 0)].add(int(d))
    parts = sorted(plain)
    for (prefix, width), numbers in sorted(groups.items()):
        ranges = _ranges(sorted(numbers))
        if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
            parts.append(f"{prefix}{ranges[0][0]:0{width}d}")
            continue
        text = ",".join(f"{a:0{width}d}" if a == b else f"{a:0{width}d}-{b:0{width}d}" for a, b in ranges)
        parts.append(f"{prefix}[{text}]")
    return ",".join(parts)


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def expand(hostlist: str) -> list[str]:
    """``node[017,042-044],login1`` -> every name, in order. Raises ValueError on a malformed list."""
    names: list[str] = []
    text = hostlist.strip()
    pos = 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"malformed host list {hostlist!r}")
        prefix, inner = m.group(1).strip(), m.group(2)
        if inner is None:
            names.append(prefix)
        else:
            for item in inner.split(","):
                first, _, last = item.partition("-")
                if not first.isdigit() or (last and not last.isdigit()):
                    raise ValueError(f"malformed host list {hostlist!r}: {item!r}")
                width = len(first)
                names += [f"{prefix}{n:0{width}d}" for n in range(int(first), int(last or first) + 1)]
        pos = m.end()
    return names
