"""``envdoctor smoke-train``: train the reference model briefly on this environment, give a verdict.

Modules: config (options, no torch), runner (CLI side: torch probe, worker processes, events),
worker / train (the training itself, in child processes), fp8, distributed, checkpoint,
verdict (checks) and render (tables, SVG). torch is imported only in child processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from envdoctor.smoke.config import ConfigError, SmokeConfig
from envdoctor.smoke.runner import Launch, Outcome, train

__all__ = ["ConfigError", "Launch", "Outcome", "SmokeConfig", "smoke_train", "train"]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
# Findings that mean "cannot train here at all" (exit 2) rather than "training went wrong" (exit 1).
USAGE_FINDINGS = {
    "torch-missing",
    "torch-import-error",
    "deepspeed-unavailable",
    "checkpoint-mismatch",
    "cuda-unavailable",
}


def smoke_train(cfg: SmokeConfig, launch: Launch, as_json: bool, plot: Path | None) -> int:
    """Run, render (text with a progress bar on stderr, or JSON only on stdout); return the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from envdoctor.smoke import render
    from envdoctor.smoke.verdict import passed, verdict

    err = Console(stderr=True)
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

        outcome = train(cfg, launch, on_event)
    if outcome.error and outcome.result is None:
        rows = render.precision_rows({"runs": outcome.finished_runs})
        if as_json:
            payload = {"ok": False, "finding": outcome.error, "detail": outcome.detail, "precisions": rows}
            sys.stdout.write(json.dumps(payload) + "\n")
        else:
            if rows:  # what finished before the timeout or crash is kept (checkpoints too)
                err.print(
                    f"finished before it stopped ({len(rows)} of {len(cfg.precisions)}):", highlight=False
                )
                for run in outcome.finished_runs:
                    err.print(f"  {render.row_line(run)}", highlight=False, markup=False)
            err.print(f"envdoctor: error: [{outcome.error}] {outcome.detail}", highlight=False, markup=False)
        return EXIT_USAGE if outcome.error in USAGE_FINDINGS else EXIT_PROBLEM
    result = outcome.result
    checks = verdict(result, cfg)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        render.write_plot(result, plot)
    ok = passed(checks)
    if as_json:
        payload = {
            "ok": ok,
            "checks": [c.to_dict() for c in checks],
            "precisions": render.precision_rows(result),
            "plot": str(plot) if plot else None,
            "result": result,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        render.print_text(result, checks, plot, Console())
    return EXIT_OK if ok else EXIT_PROBLEM
