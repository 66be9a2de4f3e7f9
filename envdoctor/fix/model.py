"""The plan as data: steps typed by the kind of action they hold, which findings run, and the plan.

Pure data and the text of each step; touches nothing. A step holds one action of the closed set
:data:`envdoctor.findings.Action` (``PipInstall``, ``PipUninstall``, ``SetEnv``, ``Manual``), so
``Step[PipInstall]`` is known to have specs and an index; code that handles steps matches every kind
and ends with :func:`unknown_kind`, so mypy reports a kind left out. Every kind but a manual step is
run by ``--apply``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envdoctor.findings import Action, Finding, Manual, PipInstall, PipUninstall, SetEnv, Severity

ACTIVATION_NAME = "envdoctor-activate.sh"  # in the target's prefix; the user sources it
# Installed from the same index as torch: their builds must match torch's CUDA variant.
TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio", "triton", "pytorch-triton"})

# The kind of action a step holds (the planner keeps installs, uninstalls, variables and manual steps apart).
A = TypeVar("A", bound=Action, covariant=True)
PipAction = PipInstall | PipUninstall


@dataclass
class Step(Generic[A]):
    """One action of the plan and the findings (or recipe) it comes from."""

    action: A
    because: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> bool:
        """Whether ``--apply`` runs it: every kind but a manual step."""
        return not isinstance(self.action, Manual)

    def to_dict(self) -> dict[str, Any]:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.action).items()}
        return {"action": data, "because": list(self.because)}


@dataclass(frozen=True)
class Selection:
    """Which findings get automatic steps; every other finding's automatic steps are only shown.

    ``only``: exactly the findings with these ids (any severity; nothing else is planned at all).
    Otherwise errors, plus warnings with ``include_warnings``; info findings only through ``only``.
    Manual steps cost nothing to list, so every listed finding's manual steps are in the plan.
    """

    only: frozenset[str] | None = None
    include_warnings: bool = False

    def lists(self, finding: Finding) -> bool:
        return self.only is None or finding.id in self.only

    def runs(self, finding: Finding) -> bool:
        if self.only is not None:
            return finding.id in self.only
        return finding.severity is Severity.ERROR or (
            self.include_warnings and finding.severity is Severity.WARNING
        )

    @property
    def hint(self) -> str:
        """How to opt in to the steps this selection leaves out (shown above them)."""
        if self.include_warnings:
            return "info findings; run one with --only ID"
        return "warnings and info; add --include-warnings for warnings, or --only ID"


ERRORS_ONLY = Selection()


@dataclass
class Plan:
    python: str | None  # the interpreter the plan is for
    prefix: str | None  # its sys.prefix: where the activation file and snapshots live
    steps: list[Step[Action]] = field(default_factory=list)
    # Automatic steps of findings the selection leaves out: shown, never run (see Selection).
    deferred: list[Step[Action]] = field(default_factory=list)
    selection: Selection = ERRORS_ONLY
    # Pins passed to pip as a constraints file while installing anything that is not torch.
    constraints: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # why --apply must not run (PEP 668, conda)
    notes: list[str] = field(default_factory=list)  # conflicts resolved, unfixable findings, ...

    @property
    def automatic_steps(self) -> list[Step[Action]]:
        return [s for s in self.steps if s.automatic]

    @property
    def manual_steps(self) -> list[Step[Action]]:
        return [s for s in self.steps if not s.automatic]

    @property
    def changes_packages(self) -> bool:
        return any(isinstance(s.action, (PipInstall, PipUninstall)) for s in self.steps)

    @property
    def activation_path(self) -> str | None:
        return f"{self.prefix.rstrip('/')}/{ACTIVATION_NAME}" if self.prefix else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "prefix": self.prefix,
            "activation_file": self.activation_path,
            "steps": [s.to_dict() for s in self.steps],
            "commands": [self.describe(s) for s in self.steps],
            "deferred": [s.to_dict() for s in self.deferred],
            "deferred_commands": [self.describe(s) for s in self.deferred],
            "constraints": list(self.constraints),
            "refusals": list(self.refusals),
            "notes": list(self.notes),
        }

    def describe(self, step: Step[Action]) -> str:
        """The step as the user would type it (pip commands) or read it (env, manual)."""
        action = step.action
        match action:
            case PipInstall() | PipUninstall():
                constraints = "<constraints>" if self.constraints and needs_constraints(action) else None
                return shlex.join([self.python or "python", "-m", "pip", *pip_args(action, constraints)])
            case SetEnv():
                where = self.activation_path or ACTIVATION_NAME
                if action.value is None:
                    return f"unset {action.name} (in {where})"
                return f"export {action.name}={shlex.quote(action.value)} (in {where})"
            case Manual():
                return f"MANUAL: {action.text}"
            case _:
                unknown_kind(action)


def unknown_kind(action: NoReturn) -> NoReturn:
    """The last case of a ``match`` over the action kinds: mypy rejects the call while a kind is left
    out (``typing.assert_never``, which Python 3.10 lacks)."""
    raise AssertionError(f"unknown kind of action: {action!r}")


def pip_args(action: PipAction, constraints_file: str | None = None) -> list[str]:
    """The pip arguments of an action (after ``python -m pip``): exact specifiers, index, constraints."""
    if isinstance(action, PipUninstall):
        return ["uninstall", "-y", *action.names]
    args = ["install", "--no-input"]
    if action.index_url:
        args += ["--index-url", action.index_url]
    if action.reinstall:
        args.append("--force-reinstall")
    if constraints_file:
        args += ["-c", constraints_file]
    return [*args, *action.specs]


def needs_constraints(action: PipAction) -> bool:
    """Whether pip gets the torch constraints for this action (any install outside torch's family)."""
    return isinstance(action, PipInstall) and not any(
        canonicalize_name(Requirement(s).name) in TORCH_FAMILY for s in action.specs
    )
