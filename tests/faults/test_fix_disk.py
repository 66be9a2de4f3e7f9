"""A full disk under ``fix --apply``: a venv on a small tmpfs (mounted as root, skipped otherwise).

Full before the snapshot: one-line error naming the cause, exit 2, nothing changed, no partial
snapshot left. Full while pip writes: the step fails and the files come back by rename (which
needs no free space), exit 1."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fix_faults import LocalIndex, conflict_wheels, envdoctor, pip_env, plant_conflict, record_state

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Write a filler file until the disk is full, then give back ``leave`` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * chunk):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, os.path.getsize(filler) - leave))


def test_full_disk_before_the_snapshot_changes_nothing(small_disk, fresh_venv, isolated_env, fix_wheels):
    py = fresh_venv(small_disk / "venv")
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    (small_disk / "venv" / ".envdoctor").mkdir()  # the lock's folder exists: only the snapshot is refused
    _fill(small_disk, leave=0)
    done = envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("envdoctor: error: cannot write the snapshot under ")
    assert done.stderr.rstrip().endswith("No space left on device") and len(done.stderr.splitlines()) == 1
    assert "running:" not in done.stdout
    assert record_state(py) == start
    leftovers = list((small_disk / "venv" / ".envdoctor" / "snapshots").iterdir())
    assert leftovers == []  # no 0-byte or half-written snapshot to trip a later --rollback


def test_full_disk_while_pip_writes_rolls_back_exactly(small_disk, fresh_venv, tmp_path):
    wheels = conflict_wheels(tmp_path / "big-wheels", big=8 * 1024 * 1024)
    index = LocalIndex(wheels)
    try:
        env = pip_env(index)
        py = fresh_venv(small_disk / "venv")
        plant_conflict(py, env, wheels)
        start = record_state(py)
        _fill(small_disk, leave=2 * 1024 * 1024)  # room for the snapshot, not for beta 1.0's 8 MB
        done = envdoctor("fix", "--apply", "--quick", "--python", str(py), env=env)
    finally:
        index.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Rolled back (step failed:" in done.stdout and "No space left on device" in done.stdout
    assert "environment restored exactly" in done.stdout and "Traceback" not in done.stderr
    assert record_state(py) == start
