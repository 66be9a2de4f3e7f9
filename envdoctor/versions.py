"""Version strings and project names, read one way everywhere.

Driver, CUDA and compute-capability numbers are compared as integer tuples (``"580.95.05"``, ``"12.0"``);
Python packages as PEP 440 versions, with the local tag (``+cu126``) set aside where only the release
matters. (Project names: :func:`packaging.utils.canonicalize_name`, as pip compares them.)
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version


def version_tuple(version: str) -> tuple[int, ...]:
    """``"580.95.05"`` -> ``(580, 95, 5)``; leading numeric parts only (``"2.6.0+cu126"`` -> 2, 6, 0)."""
    parts: list[int] = []
    for piece in re.split(r"[.+]", version.strip()):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
        if m.group() != piece:
            break
    return tuple(parts)


def public_version(text: str) -> str:
    """The version without its local tag: ``"2.6.0+cu126"`` -> ``"2.6.0"``."""
    return text.split("+", 1)[0].strip()


def parse_version(text: str | None) -> Version | None:
    """A PEP 440 version, or None for an unknown or unparsable one (never raises)."""
    if not text:
        return None
    try:
        return Version(text.strip())
    except InvalidVersion:
        return None
