"""``envdoctor smoke-train``: train the reference model briefly on this environment, give a verdict.

Modules: config (options, no torch), runner (CLI side: torch probe, worker processes, events),
worker / train (the training itself, in child processes), fp8, distributed, checkpoint,
verdict (checks) and render (tables, SVG). torch is imported only in child processes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from envdoctor.smoke import runner
from envdoctor.smoke.config import ConfigError, SmokeConfig
from envdoctor.smoke.runner import Launch, Outcome

# The runner is called as runner.train: a bare name "train" here would be replaced by the submodule
# envdoctor.smoke.train as soon as anything imports that.
__all__ = ["ConfigError", "Launch", "Outcome", "SmokeConfig", "smoke_train"]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Findings that mean "cannot train here at all" (exit 2) rather than "training went wrong" (exit 1).
USAGE_FINDINGS = {
    "torch-missing",
    "torch-import-error",
    "deepspeed-unavailable",
    "checkpoint-mismatch",
    "cuda-unavailable",
    "checkpoint-write-failed",
}


def out_dir_problem(out: Path) -> str | None:
    """Why checkpoints cannot be written under ``out`` (one line), or None: checked before any training."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".envdoctor-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        return f"--out {out}: exists and is not a folder"
    except OSError as exc:
        return f"--out {out}: cannot write there ({exc.strerror or exc})"
    return None


def interrupted_line(result: dict | None, steps: int) -> tuple[str, int | None, str | None]:
    """What an interrupted run says: the line, the step it stopped at and the checkpoint it saved."""
    runs = [r for r in (result or {}).get("runs", []) if r.get("interrupted")]
    if not runs:
        return "interrupted before a checkpoint was saved; rerun to start again", None, None
    run = runs[-1]
    line = (
        f"interrupted at step {run['steps_done']} of {steps} ({run['precision']}), checkpoint saved "
        f"to {run['checkpoint']}; rerun with --resume to continue"
    )
    return line, run["steps_done"], run["checkpoint"]


def smoke_train(cfg: SmokeConfig, launch: Launch, as_json: bool, plot: Path | None) -> int:
    """Run, render (text with a progress bar on stderr, or JSON only on stdout); return the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from envdoctor.smoke import render
    from envdoctor.smoke.verdict import passed, verdict

    err = Console(stderr=True, soft_wrap=True)  # log lines stay whole in a file or a pipe
    problem = out_dir_problem(Path(cfg.out_dir))
    if problem:
        print(f"envdoctor: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    total = cfg.steps * len(cfg.precisions)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    offsets: dict[str, int] = {}
    # A bar on a terminal; in a log (stderr not a TTY) a plain line every tenth of a precision's steps.
    step_lines = max(1, cfg.steps // 10) if not err.is_terminal else 0
    err.print(
        f"checkpoints and loss curve in {cfg.out_dir}; stops after {launch.timeout_s:g} s", highlight=False
    )
    with Progress(*columns, console=err, transient=True) as progress:
        bar = progress.add_task("starting (import torch)", total=total)

        def on_event(event: dict) -> None:
            kind = event["event"]
            if kind in ("start", "unsupported"):
                offsets[event["precision"]] = len(offsets) * cfg.steps
            if kind == "notice":
                progress.console.print(f"note: {event['text']}", highlight=False, markup=False)
            elif kind == "step":
                progress.update(bar, completed=offsets[event["precision"]] + event["step"])
                progress.update(bar, description=f"{event['precision']} loss {event['loss']:.4f}")
                if step_lines and (event["step"] % step_lines == 0 or event["step"] == cfg.steps):
                    line = f"{event['precision']} step {event['step']}/{cfg.steps} loss {event['loss']:.4f}"
                    progress.console.print(line, highlight=False)
            elif kind in ("run", "unsupported"):
                run = (
                    event["run"]
                    if kind == "run"
                    else {"precision": event["precision"], "unsupported": event["finding"]}
                )
                progress.console.print(render.row_line(run), highlight=False, markup=False)

        outcome = runner.train(cfg, launch, on_event)
    if outcome.interrupted:
        line, step, saved = interrupted_line(outcome.result, cfg.steps)
        if as_json:
            payload: dict[str, Any] = {
                "ok": False,
                "interrupted": True,
                "step": step,
                "checkpoint": saved,
                "detail": line,
            }
            sys.stdout.write(json.dumps(payload) + "\n")
        else:
            print(f"envdoctor: {line}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.error and outcome.result is None:
        rows = render.precision_rows({"runs": outcome.finished_runs})
        if as_json:
            failed: dict[str, Any] = {
                "ok": False,
                "finding": outcome.error,
                "detail": outcome.detail,
                "precisions": rows,
            }
            sys.stdout.write(json.dumps(failed) + "\n")
        else:
            if rows:  # what finished before the timeout or crash is kept (checkpoints too)
                err.print(
                    f"finished before it stopped ({len(rows)} of {len(cfg.precisions)}):", highlight=False
                )
                for run in outcome.finished_runs:
                    err.print(f"  {render.row_line(run)}", highlight=False, markup=False)
            print(
                f"envdoctor: error: [{outcome.error}] {outcome.detail}", file=sys.stderr
            )  # one line, never wrapped
        return EXIT_USAGE if outcome.error in USAGE_FINDINGS else EXIT_PROBLEM
    result = outcome.result
    assert result is not None, "train() returns figures or an error"
    checks = verdict(result, cfg)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        render.write_plot(result, plot)
    ok = passed(checks)
    if as_json:
        report: dict[str, Any] = {
            "ok": ok,
            "checks": [c.to_dict() for c in checks],
            "precisions": render.precision_rows(result),
            "plot": str(plot) if plot else None,
            "result": result,
        }
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        render.print_text(result, checks, plot, Console())
    return EXIT_OK if ok else EXIT_PROBLEM
