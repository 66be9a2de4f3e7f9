"""Worker process of smoke-train: ``python -m envdoctor.smoke.worker CONFIG.json`` (or under torchrun).

Talks to the CLI process through stdout lines ``EVENT_PREFIX {json}`` (each node's local rank 0); everything
else a library prints is ignored. torch is imported here, in the child, so that a missing or
broken torch becomes a finding id instead of a crash of the CLI.
Exit codes: 0 finished, 2 torch missing/broken, a bad or unwritable checkpoint, 130 interrupted
(checkpoint saved).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

EVENT_PREFIX = "@envdoctor-smoke"
EXIT_INTERRUPTED = 130


def emit(event: str, **fields: Any) -> None:
    # The first process of each node talks to that node's CLI: with several nodes every node gives its
    # own verdict (c10d hands out global ranks in any order, so global rank 0 may be on any node).
    if os.environ.get("LOCAL_RANK", "0") == "0":
        sys.stdout.write(f"{EVENT_PREFIX} {json.dumps({'event': event, **fields})}\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m envdoctor.smoke.worker CONFIG.json\n")
        return 2
    from envdoctor.smoke import threads

    threads.apply()  # before torch starts its OpenMP pool: libgomp reads the wait policy once
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        emit(
            "error", finding="torch-missing" if exc.name == "torch" else "torch-import-error", detail=str(exc)
        )
        return 2
    except Exception as exc:  # a broken install raises anything (OSError for a missing .so, ...)
        emit("error", finding="torch-import-error", detail=f"{type(exc).__name__}: {exc}")
        return 2
    from envdoctor.smoke.checkpoint import CheckpointError, CheckpointWriteError
    from envdoctor.smoke.config import SmokeConfig
    from envdoctor.smoke.train import StopSignal, run

    cfg = SmokeConfig.read(Path(argv[0]))
    stop = StopSignal()

    def request_stop(signum: int, frame: object) -> None:
        stop.requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        result = run(cfg, emit, stop)
    except CheckpointError as exc:
        emit("error", finding="checkpoint-mismatch", detail=str(exc))
        return 2
    except CheckpointWriteError as exc:
        emit("error", finding="checkpoint-write-failed", detail=str(exc))
        return 2
    emit("result", result=result)
    return EXIT_INTERRUPTED if any(r.get("interrupted") for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
