"""The CUDA toolkit (nvcc) and the CUDA libraries a process could load, with where each comes from.

Touches: reads LD_LIBRARY_PATH folders, /etc/ld.so.cache and CUDA toolkit folders; runs ``nvcc --version``
(and ``ldconfig -p`` only when the cache cannot be parsed). Writes nothing.

Libraries are looked up on LD_LIBRARY_PATH, in the dynamic linker's cache (/etc/ld.so.cache, parsed
directly: reading it takes well under a millisecond where ``ldconfig -p`` costs a process) and in the
``nvidia-*`` wheels of the target environment.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

from envdoctor.facts import CudaFacts, LibraryFile, Toolkit
from envdoctor.probes import _process

LIBRARY_RE = re.compile(r"^(libcudart|libcudnn|libcublas|libnccl|libnvJitLink)\.so(\.[0-9]+)*$")
LD_SO_CACHE = "/etc/ld.so.cache"
TOOLKIT_ROOTS = ("/usr/local", "/opt")
_TOOLKIT_DIR = re.compile(r"^cuda(?:-\d+(?:\.\d+)*)?$")
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("<20sIIB3xI12x")  # magic, nlibs, len_strings, flags, extension offset
_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap


def probe(timeout: float) -> CudaFacts:
    """CUDA_HOME, nvcc and its release, and the CUDA libraries on LD_LIBRARY_PATH and in ldconfig."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home is None and Path("/usr/local/cuda").is_dir():
        home = "/usr/local/cuda"
    facts = CudaFacts(cuda_home=home)
    facts.nvcc_path = find_nvcc(home)
    on_path = shutil.which("nvcc")
    facts.path_nvcc = os.path.realpath(on_path) if on_path else None
    facts.toolkits = installed_toolkits(home)
    if facts.nvcc_path:
        facts.nvcc_version = nvcc_release(facts.nvcc_path, timeout)
    facts.libraries = library_path_libraries(os.environ.get("LD_LIBRARY_PATH", "")) + ldconfig_libraries(
        timeout
    )
    return facts


def find_nvcc(cuda_home: str | None) -> str | None:
    """The nvcc a build would use: $CUDA_HOME/bin/nvcc when CUDA_HOME is set, else the one on PATH."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        candidate = Path(cuda_home or "", "bin", "nvcc")
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nvcc")
    if found:
        return found
    candidate = Path(cuda_home or "/usr/local/cuda", "bin", "nvcc")
    return str(candidate) if os.access(candidate, os.X_OK) else None


def nvcc_release(nvcc: str, timeout: float) -> str | None:
    """ "13.0" from ``nvcc --version`` ("Cuda compilation tools, release 13.0, V13.0.88")."""
    try:
        done = _process.run([nvcc, "--version"], timeout=timeout)
    except OSError:
        return None
    match = re.search(r"release ([0-9]+\.[0-9]+)", done.stdout)
    return match.group(1) if match else None


def installed_toolkits(cuda_home: str | None, roots: tuple[str, ...] = TOOLKIT_ROOTS) -> list[Toolkit]:
    """Every CUDA toolkit directory (``cuda``, ``cuda-12.8``) under ``roots`` and CUDA_HOME, by real path.

    The version is read from the toolkit's version.json (CUDA >= 11.1) or version.txt: no process.
    """
    candidates = [
        os.path.join(root, name) for root in roots for name in _listdir(root) if _TOOLKIT_DIR.match(name)
    ]
    if cuda_home:
        candidates.append(cuda_home)
    toolkits: dict[str, Toolkit] = {}
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if real not in toolkits and os.path.isdir(os.path.join(real, "bin")):
            toolkits[real] = Toolkit(path=real, version=toolkit_version(real))
    return sorted(toolkits.values(), key=lambda t: t.path)


def toolkit_version(root: str) -> str | None:
    """ "12.8" from ``<root>/version.json`` ({"cuda": {"version": "12.8.1"}}) or version.txt."""
    text = _read_text(os.path.join(root, "version.json"))
    match = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"(\d+\.\d+)', text)
    if not match:
        match = re.search(r"CUDA Version (\d+\.\d+)", _read_text(os.path.join(root, "version.txt")))
    return match.group(1) if match else None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(65536)
    except OSError:
        return ""


def library_path_libraries(ld_library_path: str) -> list[LibraryFile]:
    found = []
    for directory in dict.fromkeys(d for d in ld_library_path.split(":") if d):
        found += scan_directory(directory, "LD_LIBRARY_PATH")
    return found


def scan_directory(directory: str, origin: str) -> list[LibraryFile]:
    """The tracked CUDA libraries in one directory."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [_library(name, os.path.join(directory, name), origin) for name in names if LIBRARY_RE.match(name)]


def wheel_libraries(nvidia_roots: list[str]) -> list[LibraryFile]:
    """Libraries shipped by nvidia-* wheels: ``<site>/nvidia/<pkg>/lib`` (and ``nvidia/cu13/lib``)."""
    found = []
    for root in nvidia_roots:
        for lib_dir in sorted(Path(root, "nvidia").glob("*/lib")) + sorted(
            Path(root, "nvidia").glob("*/*/lib")
        ):
            found += scan_directory(str(lib_dir), "wheel")
    return found


def ldconfig_libraries(timeout: float, cache: str = LD_SO_CACHE) -> list[LibraryFile]:
    """Tracked libraries the dynamic linker finds through its cache."""
    entries = read_ld_so_cache(cache)
    if entries is None:
        entries = _ldconfig_p(timeout)
    seen = set()
    found = []
    for name, path in entries:
        if LIBRARY_RE.match(name) and path not in seen:
            seen.add(path)
            found.append(_library(name, path, "ldconfig"))
    return found


def read_ld_so_cache(path: str = LD_SO_CACHE) -> list[tuple[str, str]] | None:
    """(soname, path) pairs of a glibc ≥ 2.32 ``ld.so.cache``; None if the format is not that one."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(_NEW_MAGIC) or len(data) < _HEADER.size:
        return None
    _magic, count, _strings, _flags, _ext = _HEADER.unpack_from(data)
    entries = []
    for i in range(count):
        offset = _HEADER.size + i * _ENTRY.size
        if offset + _ENTRY.size > len(data):
            return None
        _f, key, value, _os, _hw = _ENTRY.unpack_from(data, offset)
        entries.append((_c_string(data, key), _c_string(data, value)))
    return entries


def _ldconfig_p(timeout: float) -> list[tuple[str, str]]:
    """``ldconfig -p`` for caches this module cannot parse (old glibc formats)."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        done = _process.run([ldconfig, "-p"], timeout=timeout)
    except OSError:
        return []
    pairs = []
    for line in done.stdout.splitlines():
        match = re.match(r"\s*(\S+) \(.*\) => (\S+)$", line)
        if match:
            pairs.append((match.group(1), match.group(2)))
    return pairs


def _c_string(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    return data[offset : end if end >= 0 else len(data)].decode("utf-8", "replace")


def _library(name: str, path: str, origin: str) -> LibraryFile:
    """A library file; its version is the suffix of the file the name resolves to (libcudart.so.13.0.96)."""
    real = os.path.basename(os.path.realpath(path))
    _, sep, version = real.partition(".so.")
    return LibraryFile(name=name, path=path, origin=origin, version=version if sep else None)
