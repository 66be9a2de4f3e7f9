"""Faults around smoke-train: an output folder that cannot be written, a full disk (for the
checkpoint, and for the compiled selected branch), a torch import that hangs, Ctrl-C, and a rank
stopped with SIGSTOP under torchrun."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import ROOT, Fault, one_line_error, rows_by_test, run_fault

from envdoctor.smoke.processes import descendants

pytest.importorskip("torch")

SMALL = ["--task", "local", "--seq-len", "16", "--batch-size", "16", "--min-accuracy", "0"]
FAULTS = [
    Fault(
        "test_smoke_out_not_a_folder",
        "--out names /dev/null or an existing file",
        "envdoctor smoke-train --out /dev/null",
        "checked before torch is imported: one line, exit 2",
        2,
        20,
    ),
    Fault(
        "test_smoke_out_read_only",
        "--out on a read-only file system",
        "envdoctor smoke-train --out RO/run",
        "one line naming the folder and 'Read-only file system', exit 2",
        2,
        20,
    ),
    Fault(
        "test_smoke_disk_full",
        "the disk fills while the checkpoint is written (a 64 KiB tmpfs)",
        "envdoctor smoke-train --out SMALLFS/run --steps 3",
        "the temporary checkpoint is removed; one line 'no space left on device', exit 2",
        2,
        180,
    ),
    Fault(
        "test_smoke_kernel_cache_full",
        "the disk holding the cache is full when PAM's selected branch is first compiled (an 8 KiB tmpfs)",
        "XDG_CACHE_HOME=SMALLFS envdoctor smoke-train --task recall --seq-len 64 --steps 60",
        "training runs on the branch's PyTorch path and the header says why (the compiler's 'No space left on device'); no half-written library is left; exit 0",
        0,
        120,
    ),
    Fault(
        "test_smoke_torch_probe_timeout",
        "--python whose `import torch` never finishes",
        "envdoctor smoke-train --python HANG --timeout 3",
        "the import probe honours --timeout: torch-import-error after 3 s, exit 2",
        2,
        20,
    ),
    Fault(
        "test_smoke_ctrl_c",
        "Ctrl-C (SIGINT) during training",
        "envdoctor smoke-train --steps 100000 --ckpt-every 1, then SIGINT",
        "workers checkpoint and stop: 'interrupted at step N ..., rerun with --resume', exit 130",
        130,
        240,
    ),
    Fault(
        "test_smoke_stopped_rank_timeout",
        "one of two torchrun ranks stopped with SIGSTOP",
        "envdoctor smoke-train --nproc 2 --timeout 30, then SIGSTOP a rank",
        "at the timeout torchrun and both ranks (stopped one included) are killed; smoke-train-timeout, exit 1",
        1,
        90,
    ),
]
ROW = rows_by_test(FAULTS)


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (skip where this user may not mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "envdoctor", "smoke-train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
    )


def _workers(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"envdoctor.smoke.worker" in argv and b"torch.distributed.run" not in argv:
                found.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("kind", ["dev-null", "file"])
def test_smoke_out_not_a_folder(tmp_path, kind) -> None:
    out = Path("/dev/null") if kind == "dev-null" else tmp_path / "results.txt"
    if kind == "file":
        out.write_text("keep me\n")
    ran = run_fault(ROW["test_smoke_out_not_a_folder"], ["smoke-train", "--out", out])
    one_line_error(ran, str(out), "not a folder")
    if kind == "file":
        assert out.read_text() == "keep me\n"


def test_smoke_out_read_only(tmp_path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        ran = run_fault(ROW["test_smoke_out_read_only"], ["smoke-train", "--out", ro / "run"])
    one_line_error(ran, str(ro / "run"), "Read-only file system")


@pytest.mark.slow
def test_smoke_disk_full(tmp_path) -> None:
    with tmpfs(tmp_path / "small", "size=64k") as small:
        out = small / "run"
        args = ["smoke-train", *SMALL, "--steps", "3", "--out", out]
        ran = run_fault(ROW["test_smoke_disk_full"], args, env={"OMP_NUM_THREADS": "1"})
        left = sorted(p.name for p in out.iterdir())
    line = one_line_error(ran, "no space left on device")
    assert "checkpoint-write-failed" in line
    assert not [name for name in left if ".tmp" in name], left


@pytest.mark.slow
def test_smoke_kernel_cache_full(tmp_path) -> None:
    with tmpfs(tmp_path / "small", "size=8k") as small:  # the library takes about 20 KiB
        args = ["smoke-train", "--task", "recall", "--seq-len", "64", "--steps", "60", "--min-accuracy", "0"]
        args += ["--out", tmp_path / "run"]
        env = {"XDG_CACHE_HOME": str(small), "OMP_NUM_THREADS": "1", "PAM_SELECT_KERNEL": "1"}
        ran = run_fault(ROW["test_smoke_kernel_cache_full"], args, env=env)
        left = [str(p.relative_to(small)) for p in small.rglob("*") if p.is_file()]
    header = " ".join(ran.stdout.split())  # the console wraps long lines
    assert "PAM's selected branch: PyTorch operations (" in header, ran.stdout
    assert "No space left on device" in header, ran.stdout
    assert left == [], left


def test_smoke_torch_probe_timeout(tmp_path) -> None:
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    args = ["smoke-train", "--python", hang, "--timeout", "3", "--out", tmp_path / "out"]
    ran = run_fault(ROW["test_smoke_torch_probe_timeout"], args)
    one_line_error(ran, "torch-import-error", "over 3 s")


@pytest.mark.slow
def test_smoke_ctrl_c(tmp_path) -> None:
    row = ROW["test_smoke_ctrl_c"]
    out = tmp_path / "run"
    started = time.monotonic()
    proc = _start([*SMALL, "--steps", "100000", "--ckpt-every", "1", "--out", str(out)])
    while not (out / "checkpoint-fp32.pt").exists() and time.monotonic() - started < row.bound_s:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=row.bound_s)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == row.exit_code, stderr
    assert "interrupted at step" in stderr and "rerun with --resume" in stderr, stderr
    assert time.monotonic() - started < row.bound_s


@pytest.mark.slow
def test_smoke_stopped_rank_timeout(tmp_path) -> None:
    row = ROW["test_smoke_stopped_rank_timeout"]
    started = time.monotonic()
    proc = _start([*SMALL, "--nproc", "2", "--steps", "100000", "--timeout", "30", "--out", str(tmp_path)])
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() - started < 25:
        workers = _workers(proc.pid)
        time.sleep(0.2)
    assert len(workers) == 2, "torchrun did not start two workers"
    os.kill(workers[-1], signal.SIGSTOP)
    _, stderr = proc.communicate(timeout=row.bound_s)
    assert "Traceback" not in stderr and proc.returncode == row.exit_code, stderr
    assert "smoke-train-timeout" in stderr, stderr
    assert time.monotonic() - started < row.bound_s
    time.sleep(1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers left running after the timeout: {survivors}"
