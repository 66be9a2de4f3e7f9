"""The planner: findings plus facts -> an ordered, deduplicated plan of actions (``fix``).

Rules say *what* should change (``Finding.actions``); the planner merges those actions across
findings (:mod:`envdoctor.fix.merge`), fills in what only the whole picture decides (the torch index
from the driver *and* every GPU's compute capability, a constraint that keeps pip from swapping
torch while it installs something else) and refuses targets it must not touch
(:mod:`envdoctor.fix.refusals`). It reads facts and never probes; touches nothing. The executor
(:mod:`envdoctor.fix.apply`) runs the plan and never plans.

Two decisions shape what runs by default. Only error findings get automatic steps: a warning's
step (installing a 1-5 GB torch where none is installed) is shown but runs only when asked for
(``--include-warnings`` or ``--only ID``, see :class:`envdoctor.fix.model.Selection`). And a planned
torch change is projected onto the facts and the rules run again on that projection
(:mod:`envdoctor.fix.torch_projection`), so steps computed for the old torch are dropped and
companions built for the old torch move with it, in torch's own pip command.
"""

from __future__ import annotations

from envdoctor.facts import Facts
from envdoctor.findings import Action, Finding, Manual, Severity
from envdoctor.fix.merge import assemble
from envdoctor.fix.model import ERRORS_ONLY, Plan, Selection
from envdoctor.fix.refusals import refusals
from envdoctor.fix.torch_projection import planned_torch, rederive


def build_plan(
    findings: list[Finding],
    facts: Facts,
    activation: dict[str, str | None] | None = None,
    allow_system: bool = False,
    allow_conda: bool = False,
    selection: Selection = ERRORS_ONLY,
) -> Plan:
    """Merge the actions of ``findings`` into one ordered plan for the facts' interpreter.

    ``activation`` is what the activation file already sets (see
    :func:`envdoctor.fix.activation.read_activation`): an environment change it already makes is not
    planned again, which keeps ``fix`` idempotent. ``selection`` decides which findings' automatic
    steps run (default: errors only). When the plan changes torch, the findings are derived again
    for the torch it installs (see :func:`envdoctor.fix.torch_projection.project_torch`) and the plan
    is made from those.
    """
    listed = [f for f in findings if selection.lists(f)]
    plan = _plan_findings(listed, [], facts, activation or {}, selection)
    target = planned_torch(plan)
    if target is not None:
        listed, forced, notes = rederive(listed, facts, target, selection)
        plan = _plan_findings(listed, forced, facts, activation or {}, selection)
        plan.notes[:0] = notes
    if selection.only is not None:
        absent = sorted(selection.only - {f.id for f in findings})
        if absent:
            plan.notes.append(f"not reported here: {', '.join(absent)}")
    plan.refusals = refusals(facts, allow_system, allow_conda, plan)
    return plan


def _plan_findings(
    findings: list[Finding],
    forced: list[Finding],
    facts: Facts,
    activation: dict[str, str | None],
    selection: Selection,
) -> Plan:
    """The plan of ``findings`` (and ``forced``, which run whatever the selection says)."""
    plan = Plan(python=facts.python.executable, prefix=facts.python.prefix, selection=selection)
    runs: list[tuple[Action, str]] = []
    shown: list[tuple[Action, Finding]] = []
    for finding in [*findings, *forced]:
        if not finding.actions and finding.severity is Severity.ERROR:
            plan.notes.append(f"{finding.id}: no automatic fix; {finding.fix or finding.message}")
        chosen = finding in forced or selection.runs(finding)
        for action in finding.actions:
            if chosen or isinstance(action, Manual):
                runs.append((action, finding.id))
            else:
                shown.append((action, finding))
    # A left-out step that a chosen one performs anyway is not listed twice: its finding is
    # named as a reason of the chosen step instead.
    done = {action for action, _ in runs}
    runs += [(action, finding.id) for action, finding in shown if action in done]
    left_out = [(a, f"{f.id} ({f.severity.value})") for a, f in shown if a not in done]
    assemble(plan, runs, facts, activation)
    if left_out:
        deferred = Plan(python=plan.python, prefix=plan.prefix)
        assemble(deferred, left_out, facts, activation)
        plan.deferred = deferred.steps
    return plan
