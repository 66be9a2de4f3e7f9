"""The CLI side of smoke-train: check that torch imports, start the worker(s), follow their events.

torch is never imported in this process. A probe child imports it first (a missing or broken torch
becomes the finding ``torch-missing`` / ``torch-import-error``); then one worker, or ``torchrun``
with N workers, trains under a wall-clock timeout. Ctrl-C is forwarded so workers save a checkpoint.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor.smoke import threads
from envdoctor.smoke.config import SmokeConfig
from envdoctor.smoke.worker import EVENT_PREFIX, EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parents[2]  # holds envdoctor/ and reference_model/
PROBE_TIMEOUT_S = 120
# Precisions a CPU has no matrix units for: torch emulates them, many times slower than fp32.
EMULATED_ON_CPU = ("fp16", "fp8")
PROBE = """
import importlib.util, json
try:
    import torch
except ModuleNotFoundError as exc:
    out = {"error": "torch-missing" if exc.name == "torch" else "torch-import-error", "detail": str(exc)}
except Exception as exc:
    out = {"error": "torch-import-error", "detail": f"{type(exc).__name__}: {exc}"}
else:
    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "deepspeed": importlib.util.find_spec("deepspeed") is not None}
print(json.dumps(out))
"""


@dataclass
class Launch:
    """How to start the workers: interpreter, process count, torchrun's multi-node flags, timeout."""

    python: str = sys.executable
    nproc: int = 1
    nnodes: str = "1"
    rdzv_endpoint: str | None = None
    rdzv_id: str = "envdoctor-smoke"
    timeout_s: float = 900.0


@dataclass
class Outcome:
    """What came back: the result figures, or the finding id that stopped the run before training."""

    result: dict[str, Any] | None = None
    error: str | None = None  # finding id: torch-missing, torch-import-error, smoke-train-crashed, ...
    detail: str = ""
    returncode: int | None = None
    interrupted: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished_runs(self) -> list[dict[str, Any]]:
        """The precisions that finished (or were found unsupported) before the run ended, in order:
        what a timeout or a crash leaves worth showing."""
        runs = []
        for event in self.events:
            if event["event"] == "run":
                runs.append(event["run"])
            elif event["event"] == "unsupported":
                runs.append({"precision": event["precision"], "unsupported": event["finding"]})
        return runs


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[threads.USER_MARK] = threads.user_mark(os.environ)  # torchrun's OMP_NUM_THREADS=1 is not the user's
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def probe_torch(python: str, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Import torch in a child: {"torch": version, ...} or {"error": finding id, "detail": ...}.

    The child runs in its own process group, killed whole after ``timeout_s`` seconds.
    """
    from envdoctor.probes import _process

    try:
        proc = _process.wait(_process.start([python, "-c", PROBE], cwd=None, env=child_env()), timeout_s)
    except OSError as exc:
        return {"error": "torch-import-error", "detail": f"cannot run {python}: {exc}"}
    if proc.timed_out:
        return {"error": "torch-import-error", "detail": f"import torch took over {timeout_s:g} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if proc.returncode == 0 and lines else _crashed(proc)
    except ValueError:
        return _crashed(proc)


def _crashed(proc: Any) -> dict[str, Any]:
    tail = proc.stderr_tail() or f"exit status {proc.returncode}"
    return {"error": "torch-import-error", "detail": f"import torch crashed: {tail}"}


def command(launch: Launch, config_path: Path) -> list[str]:
    worker = ["-m", "envdoctor.smoke.worker", str(config_path)]
    if launch.nproc == 1 and launch.nnodes == "1":
        return [launch.python, *worker]
    run = [launch.python, "-m", "torch.distributed.run", "--nproc-per-node", str(launch.nproc)]
    if launch.rdzv_endpoint:
        run += ["--nnodes", launch.nnodes, "--rdzv-backend", "c10d", "--rdzv-endpoint", launch.rdzv_endpoint]
        run += ["--rdzv-id", launch.rdzv_id]
    else:
        run += ["--standalone"]
    return [*run, *worker]


def _read_events(stream, out: queue.Queue) -> None:
    for line in stream:
        if line.startswith(EVENT_PREFIX):
            out.put(json.loads(line[len(EVENT_PREFIX) :]))
    out.put(None)


def _stop(proc: subprocess.Popen, sig: int, grace_s: float) -> None:
    """Signal the workers (torchrun and every rank), then kill what is left after grace_s."""
    from envdoctor.smoke.processes import stop_tree

    stop_tree(proc, sig, grace_s)


def train(cfg: SmokeConfig, launch: Launch, on_event: Callable[[dict[str, Any]], None]) -> Outcome:
    """Probe torch, run the workers, and collect their result (never raises for a broken torch)."""
    deadline = time.monotonic() + launch.timeout_s  # the import probe counts against --timeout too
    probe = probe_torch(launch.python, min(PROBE_TIMEOUT_S, launch.timeout_s))
    if "error" in probe:
        return Outcome(error=probe["error"], detail=probe["detail"])
    if cfg.strategy == "deepspeed" and not probe["deepspeed"]:
        detail = (
            f"--strategy deepspeed but deepspeed is not installed for {launch.python} "
            "(pip install deepspeed, or --strategy fsdp: ZeRO-3 in torch itself)"
        )
        return Outcome(error="deepspeed-unavailable", detail=detail)
    if cfg.device.startswith("cuda") and not probe["cuda"]:
        return Outcome(
            error="cuda-unavailable", detail=f"--device {cfg.device} but torch sees no CUDA device"
        )
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not probe["cuda"])
    emulated = [p for p in cfg.precisions if p in EMULATED_ON_CPU]
    if on_cpu and emulated:
        on_event(
            {
                "event": "notice",
                "text": f"{', '.join(emulated)} run emulated on the CPU (no {'/'.join(emulated)} "
                "matrix units): expect each to take several times as long as fp32",
            }
        )
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.json"
    cfg.write(config_path)
    events: queue.Queue = queue.Queue()
    outcome = Outcome()
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            command(launch, config_path),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=child_env(),
            start_new_session=True,  # its own process group: the timeout can stop every worker
        )
        threading.Thread(target=_read_events, args=(proc.stdout, events), daemon=True).start()
        try:
            while True:
                try:
                    event = events.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    _stop(proc, signal.SIGTERM, 15)
                    outcome.error, outcome.detail = (
                        "smoke-train-timeout",
                        f"no result after {launch.timeout_s:g} s (--timeout raises the limit; the "
                        f"checkpoints written so far stay in {cfg.out_dir})",
                    )
                    break
                if event is None:
                    break
                _record(event, outcome)
                on_event(event)
        except KeyboardInterrupt:
            _stop(proc, signal.SIGINT, 120)  # workers checkpoint, then exit 130
            outcome.interrupted = True
            _drain(events, outcome)  # the result event the workers sent before exiting
        proc.wait()
        outcome.returncode = proc.returncode
        outcome.interrupted = outcome.interrupted or proc.returncode == EXIT_INTERRUPTED
        if outcome.result is None and outcome.error is None:
            stderr.seek(0)
            outcome.error = "smoke-train-crashed"
            outcome.detail = f"worker exited with status {proc.returncode}: {crash_line(stderr.read())}"
    return outcome


def _record(event: dict[str, Any], outcome: Outcome) -> None:
    outcome.events.append(event)
    if event["event"] == "result":
        outcome.result = event["result"]
    elif event["event"] == "error":
        outcome.error, outcome.detail = event["finding"], event.get("detail", "")


def _drain(events: queue.Queue, outcome: Outcome) -> None:
    """Record the events still queued once the workers are gone (a few seconds at most)."""
    while True:
        try:
            event = events.get(timeout=5)
        except queue.Empty:
            return
        if event is None:
            return
        _record(event, outcome)


_EXCEPTION_LINE = re.compile(
    r"^(?:\[rank\d+\]:\s*)?(?:[\w.]+(?:Error|Exception|Interrupt)|Killed|Segmentation fault)\b"
)


def crash_line(stderr: str) -> str:
    """The line of a worker's stderr that says what went wrong: the last exception line, else the
    last line that is not decoration (torchrun ends its report with a row of '=')."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    text = [ln for ln in lines if ln.strip("=*-_ ")]
    return text[-1] if text else "no output"
