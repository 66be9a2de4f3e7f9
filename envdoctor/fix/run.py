"""The ``fix`` workflow: facts -> findings -> plan, then (asked for) apply or roll back under the lock.

:func:`run_fix` and :func:`undo_last` are what the command line and the MCP server call; each returns
an outcome that the caller renders (:mod:`envdoctor.fix.render`) and says what it does meanwhile
through a :class:`~envdoctor.fix.progress.Progress`. Touches what its parts touch: it probes the
target (or reads a facts file) and, only with ``apply`` or for a rollback, changes the target
environment through :mod:`envdoctor.fix.apply` and :mod:`envdoctor.fix.rollback`, holding the
prefix's lock from before the facts are gathered (a run that waited plans from what the other one
left) to the end.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, EnvdoctorError
from envdoctor.fix.activation import read_activation
from envdoctor.fix.apply import ApplyResult, apply_plan, count_errors
from envdoctor.fix.installer import PIP_TIMEOUT_S
from envdoctor.fix.model import ERRORS_ONLY, Plan, Selection
from envdoctor.fix.planner import build_plan
from envdoctor.fix.progress import SILENT, Progress
from envdoctor.fix.recipe_plan import plan_for_recipe
from envdoctor.fix.refusals import live_refusals
from envdoctor.fix.rollback import RollbackResult, rollback
from envdoctor.fix.state import locked, state_dir
from envdoctor.fix.target import inspect_target
from envdoctor.fix.transaction import Snapshot, latest_snapshot, snapshot_dir
from envdoctor.recipes import guard_recipe_plan, load_recipe
from envdoctor.rules import evaluate
from envdoctor.sources import gather_facts, target_python

if TYPE_CHECKING:
    from envdoctor.proof import Proof, SmokeOptions


class NoSnapshot(EnvdoctorError):
    """``--rollback`` found no snapshot of the target: nothing to roll back to (exit 2)."""


@dataclass(frozen=True)
class FixRequest:
    """What to plan, and whether and how to apply it."""

    python: Path | None = None  # the target interpreter (or its venv); None: this one
    facts: Path | None = None  # plan from a facts file instead (never applied)
    recipe: str | None = None  # make the environment match this recipe instead of the findings
    force: bool = False  # plan a recipe that does not fit this machine anyway
    apply: bool = False
    selection: Selection = ERRORS_ONLY
    allow_system: bool = False  # --break-system-packages
    allow_conda: bool = False
    quick: bool = False  # do not import torch while checking
    timeout: float | None = None  # per pip command; None: PIP_TIMEOUT_S
    wait: float = 60.0  # how long to wait for another fix of the same environment
    smoke: SmokeOptions | None = None  # prove an applied fix by a smoke-train


@dataclass
class FixOutcome:
    """A plan, and what applying it did: ``result`` None when nothing ran (a dry run, a refused
    plan, a plan without automatic steps)."""

    plan: Plan
    apply: bool
    result: ApplyResult | None = None
    proof: Proof | None = None

    @property
    def exit_code(self) -> int:
        """0 nothing to do or applied cleanly, 1 steps or refusals or errors left, 128+N a signal."""
        plan, result = self.plan, self.result
        if not self.apply:
            return EXIT_PROBLEM if plan.steps or plan.refusals else EXIT_OK
        if plan.refusals:
            return EXIT_PROBLEM
        if result is None:
            return EXIT_OK if self.proof is None or self.proof.ok else EXIT_PROBLEM
        if result.interrupted:
            return 128 + signal.Signals[result.interrupted].value
        return EXIT_OK if result.ok and not result.errors_after else EXIT_PROBLEM


def run_fix(request: FixRequest, progress: Progress = SILENT) -> FixOutcome:
    """Plan, and with ``request.apply`` apply under the target's lock (taken before the facts)."""
    if not request.apply:
        return _plan_and_apply(request, progress)
    # absolute, not resolved (a venv's python is a symlink whose location decides sys.prefix)
    target = inspect_target(target_python(request.python))
    if live_refusals(target, request.allow_system, request.allow_conda):
        return _plan_and_apply(request, progress)  # refused: nothing is written there, not even a lock
    with locked(target.prefix, request.wait, progress.waiting):
        return _plan_and_apply(request, progress)


def _plan_and_apply(request: FixRequest, progress: Progress) -> FixOutcome:
    chosen = load_recipe(request.recipe) if request.recipe is not None else None
    facts = gather_facts(request.python, request.facts, quick=request.quick)
    findings = evaluate(facts)
    activation = read_activation(facts.python.prefix) if request.facts is None else {}
    guards = (request.allow_system, request.allow_conda)
    if chosen is not None:
        plan = plan_for_recipe(chosen, facts, activation, *guards)
        guard_recipe_plan(plan, chosen, facts, request.force)
    else:
        plan = build_plan(findings, facts, activation, *guards, selection=request.selection)
    progress.planned(plan)
    outcome = FixOutcome(plan, request.apply)
    if not request.apply or plan.refusals:
        return outcome
    python = plan.python or sys.executable
    smoke = request.smoke
    if not plan.automatic_steps:  # with --smoke the environment as it is still gets its proof
        progress.log("nothing to do")
        outcome.proof = _prove(python, smoke, progress) if smoke is not None else None
        return outcome

    def prove() -> str | None:
        assert smoke is not None
        outcome.proof = _prove(python, smoke, progress)
        return None if outcome.proof.ok else outcome.proof.reason()

    outcome.result = apply_plan(
        plan,
        lambda: evaluate(gather_facts(request.python, None, quick=request.quick)),
        count_errors(findings),
        allow_system=request.allow_system,
        allow_conda=request.allow_conda,
        timeout=request.timeout or PIP_TIMEOUT_S,
        log=progress.log,
        prove=prove if smoke is not None else None,
    )
    return outcome


def _prove(python: str, options: SmokeOptions, progress: Progress) -> Proof:
    from envdoctor.proof import smoke

    progress.proving(python, options)
    proof = smoke(python, options)
    progress.proved(proof)
    return proof


@dataclass
class Undone:
    """A rollback to the newest snapshot of the target."""

    snapshot: Snapshot
    result: RollbackResult

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.result.ok else EXIT_PROBLEM


def undo_last(
    python: Path | None, wait: float = 0.0, timeout: float | None = None, progress: Progress = SILENT
) -> Undone:
    """Roll the target back to its newest snapshot, under its lock; :class:`NoSnapshot` if none.

    An environment no fix ever ran on has no state folder: nothing is written there, not even a lock.
    """
    target = inspect_target(target_python(python))
    if state_dir(target.prefix).is_dir():
        with locked(target.prefix, wait, progress.waiting):
            snap = latest_snapshot(target.prefix)
            if snap is not None:
                return Undone(snap, rollback(snap, timeout=timeout or PIP_TIMEOUT_S, log=progress.log))
    raise NoSnapshot(f"no snapshot under {snapshot_dir(target.prefix)}")
