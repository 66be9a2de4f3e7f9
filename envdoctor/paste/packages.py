"""Package listings: ``pip list``, ``pip freeze``, ``conda list``, uv's ``+ name==version`` lines and
``pip show``'s ``Name:`` / ``Version:`` pairs.

A ``name version`` line counts only inside a run of at least two package-like lines (or under a
``Package Version`` / ``# Name Version Build Channel`` header), so that a stray ``Ubuntu 22.04`` in prose
is not a package.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import LISTING, Builder
from envdoctor.paste.collect_env import conda_build

# uv's install summary marks what it installed with "+ " (and removed with "- ", which is not kept).
_FREEZE = re.compile(
    r"^\s*(?:\+\s)?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[\w,]+\])?\s*==\s*(?P<version>[^\s;#]+)\s*$"
)
_LIST = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s+(?P<version>\d+(?:\.[\w]+)+(?:[+!-][\w.]+)?)"
    r"(?:\s+(?P<build>\S+))?(?:\s+(?P<channel>\S+))?\s*$"
)
# `pip show torch`: "Name: torch" directly followed by "Version: 2.4.0+cu121".
_SHOW_NAME = re.compile(r"^\s*Name:\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*$")
_SHOW_VERSION = re.compile(r"^\s*Version:\s*(?P<version>\d[\w.+!-]*)\s*$")
_HEADER = re.compile(r"^\s*(?:#\s*)?(?:Package|Name)\s+Version\b", re.I)  # one split of an indent
_NOT_PACKAGES = {
    "cuda",
    "ubuntu",
    "debian",
    "centos",
    "windows",
    "linux",
    "gcc",
    "driver",
    "nvcc",
    "os",
    "gpu",
}


def parse(lines: list[str], b: Builder) -> None:
    _parse_pip_show(lines, b)
    hits: list[tuple[int, re.Match[str]] | None] = []
    under_header = False
    for line in lines:
        if _HEADER.match(line):
            under_header = True
            hits.append(None)
            continue
        m = _FREEZE.match(line) or _LIST.match(line)
        if m and m.group("name").lower() in _NOT_PACKAGES:
            m = None
        # 'name==version' is unambiguous on its own; 'name version' needs a listing around it.
        hits.append((int(under_header or m.re is _FREEZE), m) if m else None)
        if not m and line.strip() and not line.lstrip().startswith(("-", "#", "=")):
            under_header = False
    for i, hit in enumerate(hits):
        if hit is None:
            continue
        neighbours = (i > 0 and hits[i - 1] is not None) or (i + 1 < len(hits) and hits[i + 1] is not None)
        if hit[0] or neighbours:
            _record(hit[1], b)


def _parse_pip_show(lines: list[str], b: Builder) -> None:
    """``pip show`` blocks; a ``Name:`` line counts only with a ``Version:`` line right below it."""
    for line, below in zip(lines, lines[1:], strict=False):
        name, version = _SHOW_NAME.match(line), _SHOW_VERSION.match(below)
        if name and version:
            b.package(name.group("name"), version.group("version"), LISTING)


def _record(m: re.Match[str], b: Builder) -> None:
    name, version = m.group("name"), m.group("version")
    groups = m.groupdict()
    build, channel = groups.get("build"), groups.get("channel")
    if name.lower() == "python":
        b.put("python.version", version, LISTING)
        return
    b.package(name, version, LISTING, "pip" if channel in (None, "pypi") else "conda")
    if name == "pytorch" and build:
        conda_build(build, b)
    elif name == "pytorch-cuda":
        b.torch_build(version, LISTING)
    elif name == "cpuonly":
        b.torch_build(None, LISTING)
