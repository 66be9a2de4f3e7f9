"""The target's state folder ``<prefix>/.envdoctor/``: the per-prefix lock and all-or-nothing writes.

Touches only that folder (the lock file) and the files handed to :func:`write_atomic`. Every other
module of the package that writes into a prefix goes through here, so a SIGKILL never leaves a
half-written snapshot or activation file and two fixes of one environment never run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from envdoctor.errors import EnvdoctorError

STATE_DIR = ".envdoctor"
LOCK_POLL_S = 0.2

Log = Callable[[str], None]  # where a step of the transaction is said (print, or nothing)


class ApplyError(EnvdoctorError, RuntimeError):
    """The target cannot be inspected, locked, snapshotted or changed (one-line message)."""


def state_dir(prefix: str) -> Path:
    return Path(prefix) / STATE_DIR


_held: dict[str, tuple[int, int]] = {}  # prefix -> (fd, depth): the lock is re-entrant in one process


@contextmanager
def locked(prefix: str, wait_s: float, log: Log = lambda _m: None) -> Iterator[int]:
    """Hold the exclusive lock of ``prefix`` (waiting up to ``wait_s``); yields the lock's fd.

    An advisory ``flock`` on ``<prefix>/.envdoctor/lock``: the kernel drops it when its holders die,
    SIGKILL included, so a stale lock cannot exist. pip is started holding it too (see
    :mod:`envdoctor.fix.installer`).
    """
    key = os.path.realpath(prefix)
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield fd
        finally:
            _held[key] = (fd, _held[key][1] - 1)
        return
    path = state_dir(prefix) / "lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ApplyError(f"{path}: cannot create the lock ({exc.strerror or exc})") from None
    try:
        _acquire(fd, prefix, wait_s, log)
        with contextlib.suppress(OSError):  # the holder's pid is for messages only (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = (fd, 1)
        try:
            yield fd
        finally:
            del _held[key]
    finally:
        os.close(fd)


def _acquire(fd: int, prefix: str, wait_s: float, log: Log) -> None:
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if time.monotonic() >= deadline:
                raise ApplyError(
                    f"{prefix} is being changed by another envdoctor fix (pid {holder}); "
                    f"nothing was done, try again when it ends"
                ) from None
            if not said:
                log(f"waiting up to {wait_s:.0f} s for another envdoctor fix on {prefix} (pid {holder})")
                said = True
            time.sleep(LOCK_POLL_S)


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, fsync, rename, fsync the folder: all of it or nothing."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
