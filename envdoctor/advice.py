"""What ``check`` tells the user to run: the planner's own commands, so check and ``fix`` never disagree.

A rule's one-line ``fix`` is written for the finding alone (``pip install torch==2.7.1 --index-url
.../cu128``); the planner knows more: the target interpreter (``--python``), companions that must move
with torch (torchvision, torchaudio), a torch pin while something else installs. ``check`` therefore
prints the plan's commands for every finding that has automatic steps, and names ``envdoctor fix``
with the same source options only when there is a plan to show.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, PipInstall, PipUninstall, Severity


@dataclass
class Advice:
    """Finding id -> the shell lines that fix it, and the one-line pointer to ``envdoctor fix``."""

    commands: dict[str, list[str]] = field(default_factory=dict)
    hint: str | None = None


def shell_line(python: str, action: PipInstall | PipUninstall, constraints: list[str]) -> str:
    """A pip step as one pasteable line; torch pins reach pip as a constraints file on stdin."""
    from envdoctor.fix.model import needs_constraints, pip_args

    if constraints and needs_constraints(action):
        pins = shlex.quote("\\n".join(constraints) + "\\n")
        return f"printf {pins} | " + shlex.join([python, "-m", "pip", *pip_args(action, "/dev/stdin")])
    return shlex.join([python, "-m", "pip", *pip_args(action)])


def advise(facts: Facts, findings: list[Finding], fix_command: str | None) -> Advice:
    """The plan's pip commands per finding, and the hint (``fix_command`` None: a pasted report).

    Warnings are planned too (``--include-warnings``): check shows every finding's fix, so each
    must be the command ``fix`` would run for it. A finding whose step the plan drops (stale once
    torch changes) gets no command but says so; ``fix`` explains why in its notes.
    """
    if not any(isinstance(a, (PipInstall, PipUninstall)) for f in findings for a in f.actions):
        return Advice(hint=_hint(findings, fix_command))
    from envdoctor.fix.model import Selection
    from envdoctor.fix.planner import build_plan

    plan = build_plan(findings, facts, {}, selection=Selection(include_warnings=True))
    python = facts.python.executable if facts.origin != "report" and facts.python.executable else "python"
    commands: dict[str, list[str]] = {}
    for step in [*plan.steps, *plan.deferred]:
        if not isinstance(step.action, (PipInstall, PipUninstall)):
            continue
        line = shell_line(python, step.action, plan.constraints)
        for why in step.because:
            commands.setdefault(why.split(" (", 1)[0], []).append(line)
    # A pip step the plan dropped no longer holds once torch changes: say so, never the stale command.
    where = f" (`{fix_command}`)" if fix_command else ""
    for f in findings:
        if f.id not in commands and any(isinstance(a, (PipInstall, PipUninstall)) for a in f.actions):
            commands[f.id] = [f"fixed by the plan's torch step{where}"]
    return Advice(commands, _hint(findings, fix_command))


def _hint(findings: list[Finding], fix_command: str | None) -> str | None:
    """Point to ``envdoctor fix`` only when it has a plan to show, with the options that show it.

    By default ``fix`` plans the automatic steps of errors and lists every manual step; a warning's
    steps need ``--include-warnings``, an info finding's ``--only ID``.
    """
    from envdoctor.fix.model import Selection

    with_steps = [f for f in findings if f.actions]
    if not with_steps:
        return None
    if fix_command is None:
        return "Run `envdoctor check` then `envdoctor fix` in the reported environment for a plan."
    default = Selection()
    if any(default.runs(f) or any(isinstance(a, Manual) for a in f.actions) for f in with_steps):
        command = fix_command
    elif any(f.severity is Severity.WARNING for f in with_steps):
        command = f"{fix_command} --include-warnings"
    else:
        command = f"{fix_command} --only {','.join(dict.fromkeys(f.id for f in with_steps))}"
    if " --facts " in fix_command:  # facts from a file: fix plans, only a live target can --apply
        return f"`{command}` shows the plan."
    return f"`{command}` shows the plan; add --apply to run it."
