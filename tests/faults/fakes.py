"""Broken system parts built at test time: NVML libraries compiled with the system C compiler,
``nvidia-smi`` scripts, and sockets that accept a connection and never answer (or trickle)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# libnvidia-ml.so.1 stand-ins. Every one exports nvmlShutdown and nvmlErrorString; the mode decides
# what nvmlInitWithFlags does (pynvml's nvmlInit calls it first).
_NVML_COMMON = r"""
#include <string.h>
#include <unistd.h>
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int code) { return code == 13 ? "Function Not Found" : "Unknown Error"; }
"""
NVML_MODES = {
    # A NULL dereference inside init: the process that loads it dies of SIGSEGV.
    "segv": "int nvmlInitWithFlags(unsigned int flags) { volatile int *p = 0; return *p + (int)flags; }",
    # A wedged driver: init never returns.
    "hang": "int nvmlInitWithFlags(unsigned int flags) { for (;;) pause(); return (int)flags; }",
    # An old or partial library: no nvmlInitWithFlags at all (pynvml: "Function Not Found").
    "no-init": "int nvmlInit_v2(void) { return 0; }",
    # Init works, the driver answers, but it has no nvmlSystemGetCudaDriverVersion and no GPU.
    "no-gpu": (
        "int nvmlInitWithFlags(unsigned int flags) { return (int)flags; }\n"
        "int nvmlSystemGetDriverVersion(char *out, unsigned int n) {"
        ' strncpy(out, "550.54.15", n); return 0; }\n'
        "int nvmlDeviceGetCount_v2(unsigned int *count) { *count = 0; return 0; }"
    ),
}


def build_fake_nvml(folder: Path, mode: str) -> Path:
    """Compile a fake ``libnvidia-ml.so.1`` into ``folder`` (skip the test where no C compiler exists)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build a fake NVML library")
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"nvml-{mode}.c"
    source.write_text(_NVML_COMMON + NVML_MODES[mode] + "\n")
    library = folder / "libnvidia-ml.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True, timeout=120)
    return library


def fake_smi(folder: Path, body: str) -> Path:
    """An executable ``nvidia-smi`` shell script in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(0o755)
    return smi


@contextlib.contextmanager
def silent_server(path: Path | None = None, trickle: bytes = b"") -> Iterator[str]:
    """A server that accepts connections and never finishes an answer: a Unix socket at ``path``
    (yields its ``unix://`` URL) or TCP on 127.0.0.1 (yields ``tcp://127.0.0.1:PORT``).

    With ``trickle`` it sends that many bytes, one every 0.2 s, then goes silent.
    """
    if path is not None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        url = f"unix://{path}"
    else:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            for byte in trickle:
                if stop.wait(0.2):
                    break
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
