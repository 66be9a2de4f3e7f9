"""Findings and the structured fix actions they carry.

A rule turns facts into :class:`Finding` objects; the planner (``envdoctor fix``) turns the
:class:`Action` objects of those findings into a concrete plan. Findings are plain data so that
``--json`` output, tests and the planner all see exactly the same thing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

# The report groups a rule's findings fall under (envdoctor.render.AREAS gives their titles).
Area = Literal["system", "nvidia", "cuda", "torch", "packages", "container"]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True)
class PipInstall:
    """``pip install`` of exact specifiers, optionally from a specific index (e.g. the cu128 wheels)."""

    specs: tuple[str, ...]
    index_url: str | None = None
    reinstall: bool = False  # --force-reinstall (same version, other build: +cpu -> +cu128)
    kind: str = "pip-install"


@dataclass(frozen=True)
class PipUninstall:
    names: tuple[str, ...]
    kind: str = "pip-uninstall"


@dataclass(frozen=True)
class SetEnv:
    """Set (value) or unset (value None) a variable in the activation file the user sources."""

    name: str
    value: str | None
    kind: str = "set-env"


@dataclass(frozen=True)
class Manual:
    """A step envdoctor cannot do itself (driver upgrade, reboot, ``docker run --ipc=host``)."""

    text: str
    kind: str = "manual"


Action = PipInstall | PipUninstall | SetEnv | Manual

ACTION_TYPES: dict[str, type] = {
    "pip-install": PipInstall,
    "pip-uninstall": PipUninstall,
    "set-env": SetEnv,
    "manual": Manual,
}


def action_from_dict(data: dict[str, Any]) -> Action:
    cls = ACTION_TYPES[data["kind"]]
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**kwargs)


@dataclass
class Finding:
    """One diagnosis: what is wrong, why we think so (evidence), and how to fix it."""

    id: str
    severity: Severity
    message: str  # one line: the diagnosis with the key numbers in it
    evidence: dict[str, Any] = field(default_factory=dict)  # fact path -> value it rests on
    fix: str = ""  # one line for humans
    actions: list[Action] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    inferred: bool = False  # rests on an inference (e.g. GPU name -> compute capability)
    # One command the user can run to confirm the diagnosis (the rule's, unless the finding has its own).
    verify: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            id=data["id"],
            severity=Severity(data["severity"]),
            message=data["message"],
            evidence=dict(data.get("evidence", {})),
            fix=data.get("fix", ""),
            actions=[action_from_dict(a) for a in data.get("actions", [])],
            sources=list(data.get("sources", [])),
            inferred=bool(data.get("inferred", False)),
            verify=str(data.get("verify", "")),
        )


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; stable within a severity."""
    return sorted(findings, key=lambda f: f.severity.rank)
