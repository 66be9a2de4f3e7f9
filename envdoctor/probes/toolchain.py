"""The host build tools of a CUDA extension build: gcc, g++, ninja and cmake on PATH.

ninja and cmake are only looked up (``shutil.which``); the compilers' versions come from
``gcc -dumpfullversion -dumpversion`` and the same for g++, both started at once and bounded by the
probe timeout, so this probe costs one short process time while the other probes run.
"""

from __future__ import annotations

import re
import shutil
import time

from envdoctor.facts import ToolchainFacts
from envdoctor.probes import _process

TOOLS = ("gcc", "g++", "ninja", "cmake")


def probe(timeout: float) -> ToolchainFacts:
    found = {tool: shutil.which(tool) for tool in TOOLS}
    started = {}
    for tool in ("gcc", "g++"):
        if found[tool]:
            try:
                started[tool] = _process.start([found[tool], "-dumpfullversion", "-dumpversion"])
            except OSError:
                found[tool] = None
    deadline = time.monotonic() + timeout  # both run at once: together they get one timeout
    versions = {
        tool: _version(_process.wait(proc, max(deadline - time.monotonic(), 0.01)).stdout)
        for tool, proc in started.items()
    }
    return ToolchainFacts(
        gcc=versions.get("gcc"),
        gxx=versions.get("g++"),
        ninja=found["ninja"],
        cmake=found["cmake"],
        missing=[tool for tool in TOOLS if not found[tool]],
    )


def _version(text: str) -> str | None:
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    return match.group(1) if match else None
