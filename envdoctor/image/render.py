"""Rendering for ``envdoctor build``: progress on stderr, what the image reported about itself.

Touches: the console only (progress on stderr, results on stdout).

Progress is one line per finished step with its time and a live line for the current one.
Formatting only: the numbers come from :class:`envdoctor.image.stream.BuildEvent`. ``verbose``
echoes every output line of every step (what ``docker build`` prints), otherwise only the step
lines and, on failure, the tail of the failing step's log.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from envdoctor.findings import Finding
from envdoctor.image.pipeline import BuildOutcome, Prepared
from envdoctor.image.stream import BuildEvent, BuildFailure
from envdoctor.image.validate import SmokeRun, Validation, docker_run_line


class BuildProgress:
    """A context manager that renders build events; use its :meth:`event` as the build callback."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.status: Any = None
        self.current: BuildEvent | None = None
        self.started = 0.0

    def __enter__(self) -> BuildProgress:
        self.status = self.console.status("sending the build context", spinner="dots")
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_step()
        self.status.stop()

    def event(self, event: BuildEvent) -> None:
        if event.kind == "step":
            self._finish_step()
            self.current, self.started = event, time.monotonic()
            self.status.update(_step_line(event))
        elif self.verbose:
            self.console.print(f"  [dim]{escape(event.text)}[/]", highlight=False)
        elif self.current is not None:
            step = self.current
            self.status.update(f"{_step_line(step)}  [dim]{escape(_short(event.text))}[/]")

    def _finish_step(self) -> None:
        if self.current is None:
            return
        step, seconds = self.current, time.monotonic() - self.started
        self.console.print(
            f"[green]✓[/] {_step_line(step)} [dim]({seconds:.1f} s)[/]",
            highlight=False,
        )
        self.current = None

    def fail(self, failure: BuildFailure) -> None:
        """Replace the running step's line by the failure: step, exit code, tail of its log."""
        self.current = None
        where = f"Step {failure.step} ({_short(failure.instruction or '')})" if failure.step else "the build"
        code = f" with exit code {failure.exit_code}" if failure.exit_code is not None else ""
        self.console.print(f"[red]✗[/] {escape(where)} failed{code}", highlight=False)
        for line in failure.log_tail:
            self.console.print(f"  [dim]│[/] {escape(line)}", highlight=False)
        self.console.print(f"  {escape(failure.message)}", highlight=False)


def _step_line(event: BuildEvent) -> str:
    return f"[bold]Step {event.step}/{event.total}[/] {escape(_short(event.text))}"


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


SEVERITY_MARKS = {"error": "[red]✗[/]", "warning": "[yellow]![/]", "info": "[green]·[/]"}


def print_findings(console: Console, findings: list[Finding]) -> None:
    """One line per finding: mark, id, message; the fix indented below errors and warnings."""
    for finding in findings:
        mark = SEVERITY_MARKS.get(finding.severity.value, "·")
        console.print(f"  {mark} [bold]{escape(finding.id)}[/]: {escape(finding.message)}", highlight=False)
        if finding.fix and finding.severity.value != "info":
            console.print(f"      fix: {escape(finding.fix)}", highlight=False)


def print_start(console: Console, prepared: Prepared) -> None:
    """What is about to be built, from what and how; with local wheels, where torch comes from."""
    recipe = prepared.recipe
    console.print(
        f"Building {prepared.tag} from recipe {recipe.name} ({prepared.why}) on {prepared.base}, "
        f"network {prepared.network}",
        highlight=False,
    )
    if prepared.wheels:
        torch_from = prepared.local_torch or recipe.torch.index_url
        console.print(
            f"{len(prepared.wheels)} local wheels from {prepared.wheels_dir}; torch from {torch_from}",
            highlight=False,
        )


def print_outcome(out: Console, err: Console, outcome: BuildOutcome) -> None:
    """The build's end: a failure not shown by the progress yet, or the image, what it reported about
    itself, smoke-train's verdict and the ``docker run`` line to use it."""
    result, failure = outcome.result, outcome.result.failure
    if failure is not None:
        if failure.kind != "step-failed":  # a failed step is already on screen (BuildProgress.fail)
            err.print(f"[red]✗[/] build failed at step {failure.step}: {failure.message}", highlight=False)
        return
    out.print(f"[green]✓[/] built {outcome.prepared.tag} ({(result.image_id or '')[:19]})", highlight=False)
    if outcome.validation is None:
        return
    print_validation(out, outcome.validation, outcome.findings)
    if outcome.smoke is not None:
        print_smoke(out, outcome.smoke)
    refused = outcome.validation.ulimits_refused
    if refused:
        out.print(f"[yellow]![/] this engine refuses the memlock/stack ulimits: {refused}")
    out.print("Run it with:", highlight=False)
    run_line = docker_run_line(
        outcome.prepared.tag, gpu=outcome.prepared.recipe.hardware.gpu, ulimits=not refused
    )
    out.print(f"  {run_line}", highlight=False)


def print_validation(console: Console, validation: Validation, findings: list[Finding] | None = None) -> None:
    """What the image reported about itself: Python, container, envdoctor, torch, then the findings
    (``findings``, else the check's own)."""
    if validation.facts is None:
        console.print(
            f"[red]✗[/] validation failed: {escape(validation.error or 'no facts')}", highlight=False
        )
        return
    facts = validation.facts
    torch = facts.torch.version or facts.torch.status
    if facts.torch.cuda:
        torch += f" (CUDA {facts.torch.cuda}, available: {facts.torch.cuda_available})"
    rows = [
        ("Python", f"{facts.python.version} ({facts.python.env_kind}, {facts.python.executable})"),
        (
            "container",
            f"{facts.system.container_kind or 'unknown'} (in container: {facts.system.in_container})",
        ),
        ("envdoctor", str(facts.envdoctor_version)),
        ("torch", torch),
        (
            "/dev/shm",
            f"{facts.system.shm_size_mib} MiB" if facts.system.shm_size_mib is not None else "unknown",
        ),
    ]
    console.print("Inside the image ([dim]envdoctor check --json[/]):", highlight=False)
    for name, value in rows:
        console.print(f"  {name:<10} {escape(value)}", highlight=False)
    print_findings(console, validation.findings if findings is None else findings)


def print_smoke(console: Console, smoke: SmokeRun) -> None:
    """smoke-train's own report (environment line and checks table) as the image printed it, then a verdict."""
    from envdoctor.smoke.render import print_text
    from envdoctor.smoke.verdict import Check

    payload = smoke.payload or {}
    console.print("smoke-train inside the image ([dim]envdoctor smoke-train --json[/]):", highlight=False)
    if "checks" in payload and "result" in payload:
        print_text(payload["result"], [Check(**c) for c in payload["checks"]], None, console)
    if smoke.ok:
        console.print("[green]✓[/] smoke-train passed inside the image", highlight=False)
        return
    why = smoke.error or (
        f"[{payload['finding']}] {payload.get('detail', '')}" if payload.get("finding") else "a check failed"
    )
    console.print(f"[red]✗[/] smoke-train failed inside the image: {escape(why)}", highlight=False)
