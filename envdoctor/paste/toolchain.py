"""The CUDA toolkit and the process environment: ``nvcc --version``, ``which nvcc``, toolkit folders
(``ls -d /usr/local/cuda*``), the host compiler (collect_env's GCC line, ``gcc --version``) and CMake,
``KEY=value`` lines and ``echo $PATH`` output, ``df /dev/shm`` and the ``docker run`` command a report
quotes (its ``--shm-size``, or Docker's 64 MiB default)."""

from __future__ import annotations

import re

from envdoctor.facts import Toolkit
from envdoctor.paste.builder import DERIVED, LISTING, STATED, Builder
from envdoctor.probes.system import reported_env

_NVCC = re.compile(r"Cuda compilation tools, release (?P<v>\d+\.\d+)", re.I)
# collect_env's "GCC version: (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0" and `gcc --version` / `g++ --version`
# ("gcc (GCC) 13.2.1 20231011 (Red Hat 13.2.1-4)") or `gcc -v` ("gcc version 11.4.0 (Ubuntu ...)"): the
# version is the first x.y.z after the name. Python's "[GCC 11.4.0]" (its own build compiler) is not one.
_GCC = re.compile(
    r"^\s*(?:[-*]\s+)?(?P<tool>GCC version:|gcc|g\+\+|c\+\+)\s*(?:version\s+)?(?:\([^)]*\)\s*)?(?P<v>\d+\.\d+(?:\.\d+)?)\b"
)
_CMAKE = re.compile(
    r"^\s*(?:[-*]\s+)?(?:CMake version: (?:version )?(?P<v>\d+\.\d+(?:\.\d+)?)|cmake version (?P<v2>\d+\.\d+\S*))"
)
# The output of `which nvcc` / `command -v nvcc` (a line that is only a path to nvcc).
_WHICH_NVCC = re.compile(r"^\s*(?P<path>/\S*/bin/nvcc)\s*$")
# A toolkit folder standing alone, as `ls -d /usr/local/cuda*` prints it ("/usr/local/cuda-12.1").
_TOOLKIT = re.compile(r"(?<!\S)(?P<path>/(?:usr/local|opt)/cuda-(?P<v>\d+\.\d+))/?(?!\S)")
# `echo $PATH` (after any prompt): the next line is the variable's value.
_ECHO_VAR = re.compile(r"(?:^|[$#>]\s*)echo\s+\"?\$\{?(?P<k>PATH|LD_LIBRARY_PATH|CUDA_HOME)\}?\"?\s*$")
_ENV = re.compile(r"(?:^|\s)(?:export\s+|set\s+|\$env:)?(?P<k>[A-Z][A-Z0-9_]*)=(?P<v>\"[^\"]*\"|'[^']*'|\S*)")
_DF_SHM = re.compile(r"^\S+\s+(?P<size>\d+(?:\.\d+)?)(?P<unit>[KMGT]?)i?B?\s+\S+\s+\S+\s+\S+\s+/dev/shm\s*$")
_DOCKER_RUN = re.compile(r"\bdocker run\b")
_GPU_FLAG = re.compile(r"--gpus[= ]|--runtime[= ]nvidia|--device[= ]\S*nvidia\.com/gpu")
_SHM_FLAG = re.compile(r"--shm-size[= ](?P<size>\d+(?:\.\d+)?)(?P<unit>[bkmgBKMG]?)")
_UNIT_MIB = {
    "": 1 / (1024 * 1024),
    "b": 1 / (1024 * 1024),
    "k": 1 / 1024,
    "m": 1,
    "g": 1024,
    "t": 1024 * 1024,
}
DOCKER_DEFAULT_SHM_MIB = 64  # https://docs.docker.com/reference/cli/docker/container/run/#shm-size


def parse(lines: list[str], b: Builder) -> None:
    seen: dict[str, str] = {}
    echoed: str | None = None
    for line in lines:
        if echoed and line.strip().startswith(("/", ":")):
            seen.setdefault(echoed, line.strip())
        m = _ECHO_VAR.search(line) if "echo" in line else None  # literal tests first: a 5 MB paste
        echoed = m.group("k") if m else None
        m = _NVCC.search(line)
        if m:
            b.put("cuda.nvcc_version", m.group("v"), STATED)
        for m in _ENV.finditer(line) if "=" in line else ():
            seen.setdefault(m.group("k"), m.group("v").strip("\"'"))
        _toolchain(line, b)
        m = _DF_SHM.match(line.strip())
        if m:
            b.put("system.shm_size_mib", _mib(m.group("size"), m.group("unit") or "M"), STATED)
        if "docker run" in line and _DOCKER_RUN.search(line):
            _docker_run(line, b)
    # The same allow-list (secrets removed) as the live probe: a paste is no excuse to keep a token.
    for name, value in reported_env(seen).items():
        b.env.setdefault(name, value)
    if seen.get("CUDA_HOME"):
        b.put("cuda.cuda_home", seen["CUDA_HOME"], LISTING)


def _toolchain(line: str, b: Builder) -> None:
    m = _GCC.match(line)
    if m:
        tool = m.group("tool").lower()
        b.put("toolchain.gxx" if tool in ("g++", "c++") else "toolchain.gcc", m.group("v"), STATED)
    m = _CMAKE.match(line)
    if m:
        b.put("toolchain.cmake", f"cmake {m.group('v') or m.group('v2')}", STATED)
    m = _WHICH_NVCC.match(line)
    if m:
        b.put("cuda.path_nvcc", m.group("path"), STATED)
    for m in _TOOLKIT.finditer(line) if "/cuda-" in line else ():
        b.toolkits.setdefault(m.group("path"), Toolkit(m.group("path"), m.group("v")))


def _docker_run(line: str, b: Builder) -> None:
    """A quoted ``docker run`` is a command a person wrote: its facts are marked as stated."""
    said = line.strip()[:200]
    b.put("system.in_container", True, LISTING, said)
    b.put("system.container_kind", "docker", LISTING, said)
    if not _GPU_FLAG.search(line):
        # no --gpus / --runtime=nvidia / CDI device: no GPU is visible inside (lowest priority: any
        # tool output from inside the container says more)
        b.put("nvidia.gpus", [], DERIVED, said)
    m = _SHM_FLAG.search(line)
    if m:
        b.put("system.shm_size_mib", _mib(m.group("size"), m.group("unit") or "b"), LISTING, said)
    elif not re.search(r"--ipc[= ]host", line):
        b.put("system.shm_size_mib", DOCKER_DEFAULT_SHM_MIB, DERIVED, said)


def _mib(size: str, unit: str) -> int:
    return max(0, round(float(size) * _UNIT_MIB[unit.lower()]))
