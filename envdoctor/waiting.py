"""A spinner on a terminal while ``check`` waits for its probes, naming what it waits for.

A healthy check takes about one ``import torch``; an import that hangs on a network filesystem or a
wedged driver takes up to the probe timeout. Silence for 20 s reads as a hang of envdoctor itself,
so on a TTY a single stderr line says which probes are still running and for how long. Nothing is
written when stderr is not a terminal (logs, pipes, CI) or when the probes finish within ``delay``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# What each probe waits on, in the user's words.
WAITS_FOR = {
    "torch": "import torch",
    "target": "the package list",
    "nvidia": "the NVIDIA driver (NVML / nvidia-smi)",
    "cuda": "nvcc and ldconfig",
    "docker": "the Docker engine",
    "system": "system facts",
}


class Spinner:
    """Context manager: ``with Spinner(stream, running): collect(...)`` draws until the block ends."""

    def __init__(
        self, stream: TextIO, running: Callable[[], list[str]], delay: float = 0.5, interval: float = 0.1
    ) -> None:
        self._stream, self._running = stream, running
        self._delay, self._interval = delay, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False

    def __enter__(self) -> Spinner:
        if self._stream.isatty():
            self._thread = threading.Thread(target=self._draw, name="envdoctor-spinner", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._drawn:
            self._stream.write("\r\033[K")  # leave the terminal as it was
            self._stream.flush()

    def _draw(self) -> None:
        started = time.monotonic()
        if self._stop.wait(self._delay):
            return
        frame = 0
        while not self._stop.is_set():
            pending = self._running()
            if pending:
                names = ", ".join(WAITS_FOR.get(p, p) for p in pending)
                line = (
                    f"{FRAMES[frame % len(FRAMES)]} waiting for {names} ({time.monotonic() - started:.0f} s)"
                )
                self._stream.write(f"\r\033[K{line}")
                self._stream.flush()
                self._drawn = True
            frame += 1
            self._stop.wait(self._interval)
