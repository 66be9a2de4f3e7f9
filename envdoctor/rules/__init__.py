"""The rule registry: each rule is a small documented unit (id, severity, message, fix, sources).

A rule is a function ``(facts) -> Iterable[Finding]`` declared with :func:`rule`, which registers it
and puts the :class:`Rule` in its place. The body builds its findings with ``<name>.finding(...)``, so
the id, the usual severity and the sources are stated once, in the declaration; a finding says only
what is its own (message, evidence, fix, and a severity or sources that differ for its case).

Every rule's docstring follows one template (a test holds all of them to it)::

    Detects <what, in the facts>.            (or "Lists ..." for an informational rule)

    Why: <what goes wrong for the user when it is present>.
    Severity: <when a finding is milder or harsher than the rule's>.     (optional)
    Fix: <what to do>.

``envdoctor rules`` and docs/findings.md are generated from the declarations, ``envdoctor rules ID``
from the docstring as well. Rules read facts only
and treat an unknown fact (``None``) as unknown: no finding, never a guess. :func:`all_rules` lists
every rule, :func:`rules_of` those of one module.
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from envdoctor.facts import Facts
from envdoctor.findings import Action, Area, Finding, Severity, sort_findings

# A section of the docstring template starts a line: "Why:", "Severity:", "Fix (on the host):".
DOC_SECTION = re.compile(r"^(Why|Severity|Fix)\b[^:\n]*:", re.MULTILINE)

# Rule modules, imported on first use so that `envdoctor --help` stays fast. Their order is the order in
# which rules run and findings of one severity are listed.
RULE_MODULES = (
    "envdoctor.rules.torch_install",
    "envdoctor.rules.driver",
    "envdoctor.rules.gpu",
    "envdoctor.rules.packages",
    "envdoctor.rules.libraries",
    "envdoctor.rules.toolkit",
    "envdoctor.rules.paths",
    "envdoctor.rules.runtime",
    "envdoctor.rules.container",
    "envdoctor.rules.visibility",
    "envdoctor.rules.probes",
)

CheckFn = Callable[[Facts], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity  # the usual severity; a rule may emit a lower one for a milder case
    area: Area  # report group
    summary: str  # what the finding means, one line (docs table)
    fix: str  # the usual fix, one line (docs table)
    sources: tuple[str, ...]
    check: CheckFn
    verify: str = ""  # one command that confirms the diagnosis (shown with every finding of the rule)

    @property
    def doc(self) -> str:
        """The rule's docstring, dedented (the template above)."""
        return inspect.cleandoc(self.check.__doc__ or "")

    def finding(
        self,
        message: str,
        *,
        evidence: Mapping[str, Any] | None = None,
        fix: str = "",
        actions: Iterable[Action] = (),
        severity: Severity | None = None,
        sources: Iterable[str] | None = None,
        inferred: bool = False,
    ) -> Finding:
        """A finding of this rule: its id, severity, sources and verify command unless the case has its own."""
        return Finding(
            id=self.id,
            severity=severity or self.severity,
            message=message,
            evidence=dict(evidence or {}),
            fix=fix,
            actions=list(actions),
            sources=list(self.sources if sources is None else sources),
            inferred=inferred,
            verify=self.verify,
        )


_REGISTRY: dict[str, Rule] = {}


def rule(
    id: str,
    *,
    name: str,
    severity: Severity,
    area: Area,
    summary: str,
    fix: str,
    sources: Iterable[str],
    verify: str = "",
) -> Callable[[CheckFn], Rule]:
    """Register a rule function under a stable id; the decorated name becomes the :class:`Rule`.

    ``verify`` is one shell line the user can run to confirm the diagnosis; every error rule has one.
    """

    def register(fn: CheckFn) -> Rule:
        if id in _REGISTRY and _REGISTRY[id].check.__qualname__ != fn.__qualname__:
            raise ValueError(f"duplicate rule id {id!r}")
        _REGISTRY[id] = Rule(id, name, severity, area, summary, fix, tuple(sources), fn, verify)
        return _REGISTRY[id]

    return register


def all_rules() -> list[Rule]:
    """Every rule, in the order they run: that of RULE_MODULES, whichever module was imported first."""
    return [r for module in RULE_MODULES for r in rules_of(module)]


def rules_of(module: str | ModuleType) -> list[Rule]:
    """The rules declared in one module (``"envdoctor.rules.gpu"`` or the module itself), in their order."""
    name = module if isinstance(module, str) else module.__name__
    importlib.import_module(name)
    return [r for r in _REGISTRY.values() if r.check.__module__ == name]


def preload() -> threading.Thread:
    """Import the rule modules and parse the knowledge tables in a background thread.

    ``check`` starts this before probing: the probes mostly wait on child processes, so the
    rules are ready when the facts arrive instead of being loaded after them.
    """
    from envdoctor.knowledge import load_all

    def work() -> None:
        try:
            all_rules()
            load_all()
        except Exception:  # noqa: BLE001 - evaluate() loads them again and reports the error as a finding
            return

    thread = threading.Thread(target=work, name="preload-rules", daemon=True)
    thread.start()
    return thread


def get_rule(rule_id: str) -> Rule:
    all_rules()
    return _REGISTRY[rule_id]


def evaluate(facts: Facts) -> list[Finding]:
    """Run every rule on the facts. A rule that raises becomes an ``internal-error`` finding."""
    findings: list[Finding] = []
    for r in all_rules():
        try:
            findings.extend(r.check(facts))
        except Exception as exc:  # a buggy rule must not take the whole check down
            findings.append(
                Finding(
                    id="internal-error",
                    severity=Severity.WARNING,
                    message=f"rule {r.id} crashed: {exc.__class__.__name__}: {exc}",
                    evidence={"rule": r.id},
                    fix="Report this at the envdoctor issue tracker with `envdoctor check --json`.",
                )
            )
    return sort_findings(findings)
