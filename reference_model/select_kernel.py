"""PAM's selected branch as compiled C (``select_kernel.c``), built on first use and loaded with ctypes.

Why: in plain PyTorch each step of the selected branch (gather the chosen keys, their scores, the
softmax, the weighted sum, and in backward their gradients and the scatter into the key and value
gradients) is an operation of its own over every (query, key) pair, and on a CPU the branch then
cost as much as all the other branches together (a 4K-token step was no faster than full attention).
The C code makes one pass over each query's k * b keys in forward and one in backward.

The build needs only a C compiler (no Python or torch headers: about a second) and is cached per
source and machine under ``$XDG_CACHE_HOME/envdoctor`` (``~/.cache``). Nothing that can go wrong
with it stops training: without a compiler, with a full disk or a read-only home, with
``PAM_SELECT_KERNEL=0``, or for a dtype or device it does not serve (bf16, fp16, CUDA), the branch
runs on its PyTorch path, and :func:`status` says which and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

SOURCE = Path(__file__).with_name("select_kernel.c")
SWITCH = "PAM_SELECT_KERNEL"  # "0": never build or use the compiled branch
BUILD_TIMEOUT_S = 120
_SUFFIX = {"torch.float32": "f32", "torch.float64": "f64"}
# (function, integer, scalar and pointer arguments), as declared in select_kernel.c
_SIGNATURES = [("choose", 6, 0, 2), ("forward", 8, 1, 8), ("backward", 8, 1, 13)]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "envdoctor"


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def _build(target: Path) -> str:
    """Compile the source into ``target`` (atomically: concurrent builds each write their own file
    and rename it); returns why not, or ``""``."""
    cc = _compiler()
    if cc is None:
        return "no C compiler (cc, gcc or clang) on PATH"
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob("pam-select-*.tmp*"):  # left by a build that was killed
        if time.time() - stale.stat().st_mtime > BUILD_TIMEOUT_S:
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".tmp", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, "-O3", "-std=c99", "-fPIC", "-shared", "-o", tmp, str(SOURCE), "-lm"],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if done.returncode:
            return f"{Path(cc).name} failed: {_first_error(done.stderr) or f'exit {done.returncode}'}"
        os.replace(tmp, target)
        return ""
    finally:
        Path(tmp).unlink(missing_ok=True)


def _first_error(stderr: str) -> str:
    """The line that says what went wrong (the linker's "No space left on device", not collect2's
    summary after it), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"error|failed|fatal", line, re.I) and not line.startswith("collect2:"):
            return line
    return lines[-1] if lines else ""


def _key(source: bytes) -> str:
    """The library's name: one per source and machine type (a home shared by several machines)."""
    return hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(SWITCH, "1") == "0":
        return None, f"{SWITCH}=0"
    try:
        source = SOURCE.read_bytes()
        target = _cache_dir() / f"pam-select-{_key(source)}.so"
        why = "" if target.exists() else _build(target)
        return (None, why) if why else (ctypes.CDLL(str(target)), "")
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


class Kernel(NamedTuple):
    """The compiled functions for one dtype (signatures in select_kernel.c)."""

    choose: Callable[..., None]
    forward: Callable[..., None]
    backward: Callable[..., None]


def functions(dtype, device) -> Kernel | None:
    """The compiled functions for tensors of ``dtype`` on ``device``, or None (then the PyTorch path
    runs)."""
    suffix = _SUFFIX.get(str(dtype))
    return _kernel(suffix) if device.type == "cpu" and suffix is not None else None


@lru_cache(maxsize=2)
def _kernel(suffix: str) -> Kernel | None:
    lib = _load()[0]
    if lib is None:
        return None
    scalar = ctypes.c_float if suffix == "f32" else ctypes.c_double
    functions = []
    for name, ints, scalars, pointers in _SIGNATURES:
        fn = getattr(lib, f"pam_select_{name}_{suffix}")
        fn.argtypes = [ctypes.c_int64] * ints + [scalar] * scalars + [ctypes.c_void_p] * pointers
        fn.restype = None
        functions.append(fn)
    return Kernel(*functions)


def status() -> str:
    """One line for a verdict header: whether the compiled branch runs, and why not."""
    lib, why = _load()
    return "compiled C (fp32 and fp64 on CPU)" if lib is not None else f"PyTorch operations ({why})"
