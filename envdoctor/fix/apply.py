"""The executor: lock, snapshot the environment, run a plan's automatic steps, re-check, roll back on failure.

It runs exactly the plan it is given (it never plans) against one target interpreter. Under the
prefix's lock it first stashes every installed file (:mod:`envdoctor.fix.transaction`); if a step
fails, the re-check finds more errors than before, a proof (smoke-train) fails or a signal arrives,
the files are renamed back from the stash (:mod:`envdoctor.fix.rollback`). Touches the target's
installed files through the installer (:mod:`envdoctor.fix.installer`), its activation file and its
``.envdoctor/`` state folder (snapshots, the constraints file).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from envdoctor.findings import Finding, Manual, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.fix.activation import activated, activation_text, read_activation, write_activation
from envdoctor.fix.installer import PIP_TIMEOUT_S, Interrupts, StepResult, run_pip
from envdoctor.fix.model import Plan, needs_constraints, pip_args, unknown_kind
from envdoctor.fix.refusals import live_refusals
from envdoctor.fix.rollback import RollbackResult, rollback
from envdoctor.fix.state import ApplyError, Log, locked, state_dir
from envdoctor.fix.target import Target, inspect_target
from envdoctor.fix.transaction import Snapshot, take_snapshot


@dataclass
class ApplyResult:
    ok: bool
    steps: list[StepResult] = field(default_factory=list)
    snapshot: Snapshot | None = None
    errors_before: int = 0
    errors_after: int | None = None
    findings_after: list[Finding] = field(default_factory=list)
    rolled_back: bool = False
    rollback: RollbackResult | None = None
    reason: str = ""  # why it failed / rolled back
    refused: list[str] = field(default_factory=list)
    interrupted: str | None = None  # the signal that stopped it (SIGINT, SIGTERM, SIGHUP)


def count_errors(findings: list[Finding]) -> int:
    return sum(1 for f in findings if f.severity is Severity.ERROR)


def apply_plan(
    plan: Plan,
    recheck: Callable[[], list[Finding]],
    errors_before: int,
    allow_system: bool = False,
    allow_conda: bool = False,
    timeout: float = PIP_TIMEOUT_S,
    log: Log = lambda _msg: None,
    prove: Callable[[], str | None] | None = None,
    lock_wait: float = 0.0,
) -> ApplyResult:
    """Lock, snapshot, run every automatic step, re-check (then ``prove``, e.g. a smoke-train, whose
    answer is a failure reason or None); roll back if a step fails, errors grow, the proof fails or
    a signal arrives. The environment ends as planned or exactly as it was."""
    if not plan.python:
        raise ApplyError("the plan names no interpreter")
    target = inspect_target(plan.python)
    refused = live_refusals(target, allow_system, allow_conda)
    if refused:
        return ApplyResult(ok=False, refused=refused, reason="refused", errors_before=errors_before)
    with locked(target.prefix, lock_wait, log) as lock_fd, Interrupts() as guard:
        snap = take_snapshot(
            target.python,
            target.distributions,
            activation_text(target.prefix),
            _indexes(plan),
            log,
        )
        log(f"snapshot: {snap.path}")
        result = ApplyResult(ok=True, snapshot=snap, errors_before=errors_before)
        try:
            _run_steps(plan, target, result, timeout, log, guard, lock_fd)
            if result.ok and not guard.received:
                with activated(read_activation(target.prefix)):
                    _recheck_and_prove(result, recheck, prove, guard)
        except KeyboardInterrupt:  # raised by the guard while a smoke-train ran
            guard.raising = False
            guard.received = guard.received or signal.SIGINT
        except Exception as exc:  # a full disk writing the activation file, a failing probe: undo
            result.ok, result.reason = False, f"{type(exc).__name__}: {exc}"
        if guard.received:
            result.ok, result.interrupted = False, guard.name
            result.reason = f"interrupted by {guard.name}"
        if not result.ok:
            log(f"rolling back: {result.reason}")
            result.rollback = rollback(snap, timeout=timeout, log=log)
            result.rolled_back = True
    return result


def _recheck_and_prove(
    result: ApplyResult,
    recheck: Callable[[], list[Finding]],
    prove: Callable[[], str | None] | None,
    guard: Interrupts,
) -> None:
    result.findings_after = recheck()
    result.errors_after = count_errors(result.findings_after)
    if result.errors_after > result.errors_before:
        result.ok = False
        result.reason = f"re-check found {result.errors_after} errors, {result.errors_before} before"
    if not result.ok or prove is None or guard.received:
        return
    guard.raising = True  # the smoke-train stops its workers on KeyboardInterrupt
    try:
        failure = prove()
    except KeyboardInterrupt:
        return  # guard.received says which signal; apply_plan rolls back
    finally:
        guard.raising = False
    if failure:
        result.ok, result.reason = False, failure


def _run_steps(
    plan: Plan, target: Target, result: ApplyResult, timeout: float, log: Log, guard: Interrupts, lock_fd: int
) -> None:
    constraints = _write_constraints(target.prefix, plan.constraints)
    env_changes: dict[str, str | None] = {}
    for step in plan.steps:
        action = step.action
        if guard.received:
            return
        match action:
            case Manual():  # the user's to do: listed in the plan, never run
                continue
            case SetEnv():
                env_changes[action.name] = action.value
            case PipInstall() | PipUninstall():
                use_constraints = constraints if needs_constraints(action) else None
                log(f"running: {plan.describe(step)}")
                outcome = run_pip(target.python, pip_args(action, use_constraints), timeout, guard, lock_fd)
                result.steps.append(outcome)
                if not outcome.ok:
                    result.ok = False
                    result.reason = f"step failed: {plan.describe(step)}: {outcome.detail}"
                    return
            case _:
                unknown_kind(action)
    if env_changes and not guard.received:
        log(f"wrote {write_activation(target.prefix, env_changes)}")


def _indexes(plan: Plan) -> dict[str, str]:
    """Where packages come from: the plan's --index-url values and pip's index settings."""
    out = {
        k: v for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
    }
    urls = sorted(
        {
            s.action.index_url
            for s in plan.automatic_steps
            if isinstance(s.action, PipInstall) and s.action.index_url
        }
    )
    if urls:
        out["plan"] = " ".join(urls)
    return out


def _write_constraints(prefix: str, constraints: list[str]) -> str | None:
    if not constraints:
        return None
    path = state_dir(prefix) / "constraints.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c}\n" for c in constraints), encoding="utf-8")
    return str(path)
