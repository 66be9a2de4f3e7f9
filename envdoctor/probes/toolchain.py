"""The host build tools of a CUDA extension build: gcc, g++, ninja and cmake on PATH.

Touches: PATH lookups; ``gcc -dumpfullversion`` only where a CUDA toolkit is found. Writes nothing.

The tools are only looked up (``shutil.which``). The compiler's version matters only to nvcc, so it is
asked (``gcc -dumpfullversion -dumpversion``, one short process, bounded by the probe timeout) only
where a CUDA toolkit can be found: nvcc on PATH, CUDA_HOME / CUDA_PATH set, or /usr/local/cuda.
Elsewhere the versions stay unknown and ``check`` spawns nothing for them.
"""

from __future__ import annotations

import os
import re
import shutil

from envdoctor.facts import ToolchainFacts
from envdoctor.probes import _process

TOOLS = ("gcc", "g++", "ninja", "cmake")


def probe(timeout: float) -> ToolchainFacts:
    found = {tool: shutil.which(tool) for tool in TOOLS}
    facts = ToolchainFacts(
        ninja=found["ninja"], cmake=found["cmake"], missing=[tool for tool in TOOLS if not found[tool]]
    )
    if not _toolkit_present():
        return facts
    # gcc is nvcc's host compiler; g++ is asked only where there is no gcc.
    tool = "gcc" if found["gcc"] else "g++" if found["g++"] else None
    if tool is not None:
        version = compiler_version(found[tool] or tool, timeout)
        if tool == "gcc":
            facts.gcc = version
        else:
            facts.gxx = version
    return facts


def compiler_version(compiler: str, timeout: float) -> str | None:
    """ "13.2.0" from ``compiler -dumpfullversion -dumpversion`` (GCC >= 7 prints the full version)."""
    try:
        done = _process.run([compiler, "-dumpfullversion", "-dumpversion"], timeout=timeout)
    except OSError:
        return None
    match = re.match(r"\s*(\d+(?:\.\d+)*)", done.stdout)
    return match.group(1) if match else None


def _toolkit_present() -> bool:
    env = os.environ
    return bool(
        env.get("CUDA_HOME")
        or env.get("CUDA_PATH")
        or shutil.which("nvcc")
        or os.path.isdir("/usr/local/cuda")
    )
