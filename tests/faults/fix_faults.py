"""What the ``fix`` fault tests share: wheels built at test time, a package index on 127.0.0.1 that
can hold a download (so a signal lands while pip runs), pip isolated from this machine's own
configuration, and the exact state of an environment (hash of every RECORD-listed file)."""

from __future__ import annotations

import base64
import csv
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# --- wheels ----------------------------------------------------------------------------------


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), **files: str) -> Path:
    """A pure-Python wheel: ``files`` maps a path inside the wheel (``pkg/mod.py``, or
    ``{dist}.data/scripts/tool`` for a script) to its text."""
    dist = f"{name}-{version}"
    meta = "".join(
        [
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
        ]
    )
    entries = dict(files)
    entries[f"{dist}.dist-info/METADATA"] = meta
    entries[f"{dist}.dist-info/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, text in entries.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist}.dist-info/RECORD", "", ""])
    entries[f"{dist}.dist-info/RECORD"] = record.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name_in_zip, text in entries.items():
            zf.writestr(name_in_zip, text)
    return path


def conflict_wheels(folder: Path, big: int = 0, **beta1_files: str) -> Path:
    """alpha 1.0 needs beta<2; beta 2.0 (planted) and beta 1.0 (the fix) differ in modules and script.

    ``big`` bytes of padding in beta 1.0 (to fill a small disk while pip installs it); ``beta1_files``
    go into beta 1.0 too.
    """
    build_wheel(folder, "alpha", "1.0", ("beta<2",), **{"alpha/__init__.py": "VERSION = '1.0'\n"})
    build_wheel(
        folder,
        "beta",
        "2.0",
        **{
            "beta/__init__.py": "VERSION = '2.0'\n",
            "beta/new.py": "NEW = True\n",
            "beta-2.0.data/scripts/beta-tool": "#!/bin/sh\necho beta 2\n",
        },
    )
    build_wheel(
        folder,
        "beta",
        "1.0",
        **{
            "beta/__init__.py": "VERSION = '1.0'\n",
            "beta/old.py": "OLD = True\n",
            "beta/pad.txt": "x" * big,
            "beta-1.0.data/scripts/beta-tool": "#!/bin/sh\necho beta 1\n",
            **beta1_files,
        },
    )
    return folder


# --- a package index on 127.0.0.1 -------------------------------------------------------------


class LocalIndex:
    """A PEP 503 simple index of the wheels in a folder, served on 127.0.0.1.

    ``hold()`` makes every wheel download wait until ``release()``; ``requested`` is set when one
    starts, so a test knows pip is running and has changed nothing yet.
    """

    def __init__(self, wheels: Path) -> None:
        self.wheels = wheels
        self.requested = threading.Event()
        self._open = threading.Event()
        self._open.set()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = [p for p in self.path.split("/") if p]
                if parts[:1] == ["simple"] and len(parts) == 2:
                    links = "".join(
                        f'<a href="/files/{w.name}">{w.name}</a>\n'
                        for w in sorted(index.wheels.glob("*.whl"))
                        if w.name.split("-")[0].lower() == parts[1].lower()
                    )
                    return self._send(links.encode() or None, "text/html")
                if parts[:1] == ["files"] and len(parts) == 2 and (index.wheels / parts[1]).is_file():
                    index.requested.set()
                    index._open.wait(120)
                    return self._send((index.wheels / parts[1]).read_bytes(), "application/octet-stream")
                return self._send(None, "text/plain")

            def _send(self, body: bytes | None, kind: str) -> None:
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def hold(self) -> None:
        self.requested.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def pip_env(index: LocalIndex | None) -> dict[str, str]:
    """This process's environment without the machine's pip settings, using only ``index``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "UV_INDEX_URL"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["PIP_INDEX_URL"] = index.url if index else "http://127.0.0.1:9/simple"
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "uv" not in p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def pip_install(python: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", *args],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )


# --- running envdoctor ------------------------------------------------------------------------


def envdoctor(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``envdoctor ARGS`` in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "envdoctor.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def start_envdoctor(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """Started in a session of its own: ``os.killpg(proc.pid, SIGINT)`` is a terminal's Ctrl-C."""
    return subprocess.Popen(
        [sys.executable, "-m", "envdoctor.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )


def wait_for(condition, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def processes_using(prefix: Path) -> list[str]:
    """Command lines of live processes that run from ``prefix`` (a pip left running, say)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split(") ")[1][0]
        except OSError:
            continue
        if str(prefix) in cmd and state != "Z":
            found.append(cmd)
    return found


# --- the exact state of an environment -------------------------------------------------------

_STATE_SRC = """
import hashlib, json, os, sys
from importlib import metadata
prefix = os.path.realpath(sys.prefix)
out = {}
for d in metadata.distributions():
    base = os.path.realpath(str(d.locate_file("")))
    if not base.startswith(prefix + os.sep):
        continue
    for f in d.files or ():
        p = os.path.normpath(os.path.join(base, str(f)))
        try:
            out[os.path.relpath(p, prefix)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        except FileNotFoundError:
            out[os.path.relpath(p, prefix)] = None
print(json.dumps(out))
"""


def record_state(python: Path) -> dict[str, object]:
    """sha256 of every RECORD-listed file of every distribution in the venv, plus every file under
    its site-packages (a file no RECORD lists is part of the state too: a half-installed package)."""
    done = subprocess.run(
        [str(python), "-c", _STATE_SRC], capture_output=True, text=True, timeout=120, check=True, cwd="/"
    )
    prefix = python.parent.parent
    site = sorted(
        str(p.relative_to(prefix)) for p in prefix.glob("lib/python*/site-packages/**/*") if p.is_file()
    )
    return {"record": json.loads(done.stdout), "site_files": [f for f in site if "__pycache__" not in f]}


def plant_conflict(python: Path, env: dict[str, str], wheels: Path) -> None:
    """alpha 1.0 with beta 2.0 (alpha needs beta<2): a requirement-conflict that fix plans to solve."""
    pip_install(
        python, env, str(wheels / "alpha-1.0-py3-none-any.whl"), str(wheels / "beta-2.0-py3-none-any.whl")
    )
