"""Small text helpers shared by the report parsers: key/value lines, versions, booleans."""

from __future__ import annotations

import re
from collections.abc import Iterator

# A dotted version with PEP 440 pre/dev/post parts and a local tag: '2.1.0+cu121', '1.7.0a0+9ddd3df',
# '2.0.0.dev20230203+cu118', '2.3.0a0+git6ddf5cf', '12.1.105', '0.8.0.post1'.
VERSION = re.compile(
    r"\d+(?:\.\d+)+(?:[.-]?(?:a|b|rc|dev|post|alpha|beta)\d*)*(?:[+-]?[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*)?"
)
# Key and value each end on a non-space, so that no run of spaces is rescanned from every position
# before it (the lazy form took 100 ms on one 4000-character line).
# A key is at most 80 characters: a bounded, anchored key keeps a long line without a colon cheap.
_KV = re.compile(
    r"^\s*(?:[-*]\s+)?(?P<key>[A-Za-z`\[](?:[\w `./()?'\[\]-]{0,78}?[\w`./()?'\[\]-])?)\s*:\s*(?P<value>(?:.*\S)?)\s*$"
)
_UNKNOWN = {
    "",
    "n/a",
    "na",
    "none",
    "could not collect",
    "not installed",
    "not found",
    "unknown",
    "not set",
    "no cuda",  # collect_env on a machine or build without CUDA
}


def key_values(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """(line index, normalised key, value) for every ``key: value`` line (any padding, bullets, backticks)."""
    for i, line in enumerate(lines):
        if ":" not in line:
            continue
        m = _KV.match(line.replace("**", ""))  # markdown bold keys: "- **PyTorch Version**: 2.2.0"
        if m:
            key = re.sub(r"\s+", " ", m.group("key").replace("`", "")).strip().lower()
            yield i, key, m.group("value")


def version_in(value: str | None) -> str | None:
    """The first dotted version in a value ('2.1.0+cu121 (True)' -> '2.1.0+cu121'), None if there is none."""
    if value is None or value.strip().lower() in _UNKNOWN:
        return None
    m = VERSION.search(value)
    return m.group(0) if m else None


def short_version(value: str | None, parts: int = 2) -> str | None:
    """'12.1.105' -> '12.1' (major.minor of a CUDA or Python version)."""
    v = version_in(value)
    if v is None:
        return None
    nums = re.match(r"\d+(?:\.\d+)*", v)
    return ".".join(nums.group(0).split(".")[:parts]) if nums else None


def truth(value: str) -> bool | None:
    """'True' / 'Yes' / '(True)' -> True, 'False' / 'No' -> False, anything else -> None (unknown)."""
    v = value.strip().strip("()").lower()
    if v in ("true", "yes", "y", "1"):
        return True
    if v in ("false", "no", "n", "0"):
        return False
    return None


def is_unknown(value: str) -> bool:
    return value.strip().lower() in _UNKNOWN


def cuda_from_int(value: str) -> str:
    """The CUDA driver API version as an integer ('11040' -> '11.4', '12020' -> '12.2')."""
    n = int(value)
    return f"{n // 1000}.{(n % 1000) // 10}"
