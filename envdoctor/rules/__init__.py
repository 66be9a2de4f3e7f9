"""The rule registry: each rule is a small documented unit (id, severity, message, fix, sources).

A rule is a function ``(facts) -> Iterable[Finding]`` registered with :func:`rule`. Its docstring
is its documentation (``envdoctor rules`` and docs/findings.md are generated from it). Rules read
facts only and treat an unknown fact (``None``) as unknown: no finding, never a guess.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from envdoctor.facts import Facts
from envdoctor.findings import Area, Finding, Severity, sort_findings

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
        return (self.check.__doc__ or "").strip()


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
) -> Callable[[CheckFn], CheckFn]:
    """Register a rule function under a stable id.

    ``verify`` is one shell line the user can run to confirm the diagnosis; every error rule has one.
    """

    def register(fn: CheckFn) -> CheckFn:
        if id in _REGISTRY and _REGISTRY[id].check.__qualname__ != fn.__qualname__:
            raise ValueError(f"duplicate rule id {id!r}")
        _REGISTRY[id] = Rule(id, name, severity, area, summary, fix, tuple(sources), fn, verify)
        return fn

    return register


def all_rules() -> list[Rule]:
    for module in RULE_MODULES:
        importlib.import_module(module)
    return list(_REGISTRY.values())


def preload() -> threading.Thread:
    """Import the rule modules and parse the knowledge tables in a background thread.

    ``check`` starts this before probing: the probes mostly wait on child processes, so the
    rules are ready when the facts arrive instead of being loaded after them.
    """
    from envdoctor.knowledge import load_all

    def work() -> None:
        all_rules()
        load_all()

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
            for f in r.check(facts):
                f.verify = f.verify or r.verify
                findings.append(f)
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
