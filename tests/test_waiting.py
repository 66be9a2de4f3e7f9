"""check on a terminal says what it waits for while an import hangs; in a pipe it stays silent."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envdoctor.waiting import Spinner


@pytest.fixture(scope="module")
def hanging_torch(tmp_path_factory) -> Path:
    """A venv whose `import torch` hangs (a torch package that sleeps on import)."""
    venv = tmp_path_factory.mktemp("hang") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("import time\ntime.sleep(60)\n")
    return venv


def _check(venv: Path, tty: bool) -> tuple[int, str]:
    env = dict(os.environ, ENVDOCTOR_TORCH_TIMEOUT="4", ENVDOCTOR_PROBE_TIMEOUT="4", TERM="xterm")
    command = [sys.executable, "-m", "envdoctor", "check", "--python", str(venv)]
    if not tty:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_hanging_import_on_a_tty_shows_what_check_waits_for(hanging_torch):
    code, stderr = _check(hanging_torch, tty=True)
    assert "waiting for import torch" in stderr
    assert stderr.endswith("\r\x1b[K")  # the spinner line is erased before the report
    assert code == 1  # the import timed out: an error, never a green check


def test_hanging_import_in_a_pipe_writes_no_spinner(hanging_torch):
    code, stderr = _check(hanging_torch, tty=False)
    assert "waiting for" not in stderr and "\r" not in stderr
    assert code == 1


class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_spinner_stays_silent_when_the_probes_finish_within_the_delay():
    stream = _Tty()
    with Spinner(stream, lambda: ["torch"], delay=0.5):
        time.sleep(0.05)
    assert stream.text == ""
