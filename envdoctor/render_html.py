"""The HTML reports: ``check --format html`` (also ``--from-report``) and ``diff --format html``.

One self-contained file each (see :mod:`envdoctor.htmlpage`): the grouped verdict, every finding with
its evidence, fix and copyable commands, and the facts folded away. It only formats, as ``report``
does for text and markdown, and reads the same area lines. A page is made to be shared, so secrets
are masked (:mod:`envdoctor.redact`) in facts, evidence and messages.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from envdoctor import __version__
from envdoctor.diff import Difference, breaking
from envdoctor.facts import Facts
from envdoctor.findings import Finding, Manual, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.htmlpage import Markup, badge, card, command, fold, page, section, table, tag, verdict
from envdoctor.redact import redact, redact_text
from envdoctor.render import area_lines, flatten

ORIGINS = {"report": "from a pasted report", "file": "from a facts file", "probe": "probed live"}


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _status(value: Severity | str) -> str:
    return value.value if isinstance(value, Severity) else value


def action_commands(finding: Finding, python: str | None) -> tuple[list[str], list[str]]:
    """(shell commands to copy, manual steps to read) of a finding's fix actions."""
    from envdoctor.fix.model import pip_args

    commands, manual = [], []
    for action in finding.actions:
        if isinstance(action, (PipInstall, PipUninstall)):
            commands.append(shlex.join([python or "python", "-m", "pip", *pip_args(action)]))
        elif isinstance(action, SetEnv):
            value = action.value
            commands.append(
                f"unset {action.name}" if value is None else f"export {action.name}={shlex.quote(value)}"
            )
        elif isinstance(action, Manual):
            manual.append(action.text)
    return commands, manual


def _finding(finding: Finding, python: str | None) -> Markup:
    status = finding.severity.value
    title = [badge(status), " ", tag("code", finding.id), " ", status]
    parts: list[object] = [tag("p", redact_text(finding.message))]
    if finding.evidence:
        rows = [[tag("code", k), tag("code", _value(v))] for k, v in redact(finding.evidence).items()]
        parts.append(table(["evidence", "value"], rows))
    if finding.inferred:
        parts.append(tag("p", "Rests on an inference (e.g. GPU model → compute capability).", class_="muted"))
    if finding.fix:
        parts.append(tag("p", tag("strong", "Fix: "), finding.fix))
    commands, manual = action_commands(finding, python)
    parts += [command(c) for c in commands]
    parts += [tag("p", tag("strong", "By hand: "), m) for m in manual]
    if finding.sources:
        links = [tag("li", tag("a", url, href=url)) for url in finding.sources]
        parts.append(tag("p", "Sources:", class_="muted"))
        parts.append(tag("ul", links))
    return card(status, title, *parts)


def _facts_folds(facts: Facts) -> Markup:
    data = redact(facts.to_dict())  # a page is made to be shared
    folds = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows = [[tag("code", path), tag("code", _value(v))] for path, v in flatten(value, key)]
            folds.append(fold(key, table(["fact", "value"], rows) if rows else tag("p", "(empty)")))
    scalars = [[tag("code", k), tag("code", _value(v))] for k, v in data.items() if not isinstance(v, dict)]
    if scalars:
        folds.insert(0, fold("snapshot", table(["fact", "value"], scalars)))
    folds.append(
        fold("facts as JSON (envdoctor check --json)", tag("pre", tag("code", json.dumps(data, indent=2))))
    )
    return section("Facts", *folds, id="facts")


def render_check(facts: Facts, findings: list[Finding]) -> str:
    """The check report as one HTML page."""
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    overall = "error" if errors else "warning" if warnings else "ok"
    words = {"error": "Problems found", "warning": "Works, with warnings", "ok": "No problem found"}[overall]
    lines = area_lines(facts, findings)
    rows = []
    for line in lines:
        summary: list[object] = [line.summary]
        if line.crashed:
            summary += [tag("br"), tag("span", f"☠ probe crashed: {line.crashed}", class_="muted")]
        rows.append([badge(_status(line.status)), tag("strong", line.title), summary])
    python = facts.python.executable
    body: list[object] = [
        verdict(overall, f"{words}: {errors} error(s), {warnings} warning(s)."),
        section("Areas", table(["", "area", "summary"], rows, mark_column=True), id="areas"),
    ]
    if findings:
        body.append(section("Findings", *[_finding(f, python) for f in findings], id="findings"))
        if any(f.actions for f in findings):
            where = "Show " if facts.origin == "probe" else "On the machine checked, show "
            fix = ["envdoctor", "fix"] + (["--python", python] if python and facts.origin == "probe" else [])
            body.append(
                section(
                    "Plan",
                    tag(
                        "p",
                        where
                        + "the whole plan (nothing changes), then run it with a snapshot to roll back to:",
                    ),
                    command(shlex.join(fix)),
                    command(shlex.join([*fix, "--apply"])),
                )
            )
    body.append(_facts_folds(facts))
    origin = ORIGINS.get(facts.origin, facts.origin)
    return page(
        "envdoctor check",
        *body,
        subtitle=f"{origin}; {errors} error(s), {warnings} warning(s)",
        footer=f"envdoctor {__version__}; facts schema {facts.schema_version}",
    )


def render_diff(results: list[tuple[str, list[Difference]]], reference: str) -> str:
    """The diff of facts snapshots as one HTML page: a verdict per snapshot, differences in a table."""
    broken = [name for name, diffs in results if breaking(diffs)]
    differ = [name for name, diffs in results if diffs and not breaking(diffs)]
    if broken:
        head = verdict("error", f"{len(broken)} of {len(results)} snapshot(s) break multi-node training")
    elif differ:
        head = verdict("warning", f"{len(differ)} of {len(results)} snapshot(s) differ (not breaking)")
    else:
        head = verdict("ok", f"All {len(results)} snapshot(s) match {reference}")
    overview = []
    for name, diffs in results:
        status = "error" if breaking(diffs) else "warning" if diffs else "ok"
        text = "breaks multi-node training" if status == "error" else "differs" if diffs else "matches"
        overview.append([badge(status), tag("code", name), f"{text} ({len(diffs)} difference(s))"])
    body: list[object] = [
        head,
        section("Snapshots", table(["", "snapshot", f"against {reference}"], overview, mark_column=True)),
    ]
    for name, diffs in results:
        if not diffs:
            continue
        rows = [
            [
                badge("error" if d.breaking else "warning"),
                tag("code", d.path),
                tag("code", _show(d.a)),
                tag("code", _show(d.b)),
                d.reason,
            ]
            for d in diffs
        ]
        status = "error" if breaking(diffs) else "warning"
        body.append(
            card(status, [tag("code", name), " vs ", tag("code", reference)],
                 table(["", "fact", "reference", "this snapshot", "breaks"], rows, mark_column=True))
        )  # fmt: skip
    return page("envdoctor diff", *body, subtitle=f"reference {reference}", footer=f"envdoctor {__version__}")


def _show(value: Any) -> str:
    return "unknown" if value is None else _value(value)
