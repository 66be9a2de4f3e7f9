"""What ``fix`` shows: the plan as numbered lines, what an apply or a rollback did, and their JSON.

Text and dictionaries only; touches nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envdoctor.findings import SetEnv, Severity
from envdoctor.fix.model import ACTIVATION_NAME, Plan

if TYPE_CHECKING:
    from envdoctor.fix.apply import ApplyResult
    from envdoctor.fix.rollback import RollbackResult
    from envdoctor.fix.run import FixOutcome, Undone


def render_plan(plan: Plan) -> str:
    """The plan as numbered lines: pip commands, environment changes, then manual steps; then the
    automatic steps left out by the selection, which ``--apply`` does not run."""
    if not plan.steps:
        lines = ["Nothing to do."]
    else:
        lines = [f"Plan for {plan.python or 'this Python'}:"]
        for i, step in enumerate(plan.steps, 1):
            lines.append(f"  {i}. {plan.describe(step)}    [{', '.join(step.because)}]")
        if plan.constraints:
            lines.append(f"  <constraints> = a file pinning {', '.join(plan.constraints)}")
        if any(isinstance(s.action, SetEnv) for s in plan.steps):
            lines.append(f"  Afterwards run: . {plan.activation_path or ACTIVATION_NAME}")
    lines += [f"  note: {n}" for n in plan.notes]
    lines += [f"  REFUSED: {r}" for r in plan.refusals]
    if plan.deferred:
        lines.append(f"Not applied by default ({plan.selection.hint}):")
        lines += [f"  - {plan.describe(s)}    [{', '.join(s.because)}]" for s in plan.deferred]
    return "\n".join(lines) + "\n"


def render_result(result: ApplyResult) -> str:
    """What happened, one line per step, then the verdict (applied / rolled back / refused)."""
    lines = [f"  REFUSED: {r}" for r in result.refused]
    snap = result.snapshot  # every applied or rolled back plan has one
    for s in result.steps:
        lines.append(f"  {'ok  ' if s.ok else 'FAIL'} {s.seconds:6.1f}s  {s.command}")
        if s.detail:
            lines.append(f"        {s.detail}")
    if result.rolled_back and result.rollback is not None and snap is not None:
        rb = result.rollback
        state = "restored exactly" if rb.ok else f"NOT fully restored ({', '.join(rb.remaining) or rb.note})"
        lines.append(f"Rolled back ({result.reason}): environment {state} from {snap.path}.")
        if rb.files is not None:
            lines.append(
                f"  {rb.files.replaced} files renamed back from the stash, {rb.files.removed} removed"
            )
        if rb.removed or rb.restored:
            lines.append(
                f"  removed {', '.join(rb.removed) or '-'}; restored {', '.join(rb.restored) or '-'}"
            )
        if not rb.ok:
            lines.append(f"  Run again: envdoctor fix --rollback --python {snap.python}")
    elif result.ok and snap is not None:
        lines.append(
            f"Applied. Errors before: {result.errors_before}, after: {result.errors_after}. "
            f"Undo with: envdoctor fix --rollback --python {snap.python}"
        )
        for f in result.findings_after:
            if f.severity is Severity.ERROR:
                lines.append(f"  still: {f.id}: {f.message}")
    return "\n".join(lines) + "\n"


def result_dict(plan: Plan, result: ApplyResult) -> dict[str, Any]:
    """The plan and its outcome for ``fix --apply --json``."""
    rb = result.rollback
    return {
        "plan": plan.to_dict(),
        "ok": result.ok,
        "refused": result.refused,
        "snapshot": str(result.snapshot.path) if result.snapshot else None,
        "steps": [vars(s) for s in result.steps],
        "errors_before": result.errors_before,
        "errors_after": result.errors_after,
        "findings_after": [f.to_dict() for f in result.findings_after],
        "rolled_back": result.rolled_back,
        "reason": result.reason,
        "interrupted": result.interrupted,
        "rollback": None if rb is None else rollback_dict(rb),
    }


def rollback_dict(rb: RollbackResult) -> dict[str, Any]:
    return {
        "ok": rb.ok,
        "removed": rb.removed,
        "restored": rb.restored,
        "remaining": rb.remaining,
        "files": None if rb.files is None else vars(rb.files),
        "note": rb.note,
    }


def outcome_dict(outcome: FixOutcome) -> dict[str, Any]:
    """``fix --json``: the plan (a dry run), or the plan and what applying it did (nothing, when it
    was refused or had no automatic step)."""
    plan, result, proof = outcome.plan, outcome.result, outcome.proof
    if not outcome.apply:
        return plan.to_dict()
    if result is None:
        ok = not plan.refusals and (proof is None or proof.ok)
        doc: dict[str, Any] = {"plan": plan.to_dict(), "ok": ok, "refused": list(plan.refusals), "steps": []}
    else:
        doc = result_dict(plan, result)
    doc["smoke"] = proof.to_dict() if proof else None
    return doc


def render_undone(undone: Undone) -> str:
    """The verdict of ``fix --rollback``: nothing was changed, restored exactly, or what is left."""
    done = undone.result
    if done.ok and done.note:
        return f"nothing to roll back: {done.note}; the environment is as it was before it\n"
    if done.ok:
        return f"rolled back to {undone.snapshot.path}: environment restored exactly\n"
    left = ", ".join(done.remaining) or done.note or "files"
    return f"rollback incomplete: {left}; run `fix --rollback` again\n"
