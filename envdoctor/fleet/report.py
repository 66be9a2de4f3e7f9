"""The fleet verdict: read one ``check --json`` file per node, find the majority and the odd nodes.

A folder of node files is the common part of every launcher (srun, a Kubernetes Job, pdsh, a scheduler
of one's own). For each breaking key of ``envdoctor.diff`` the report counts the values over the nodes
and takes the value held by more than half as the baseline; a node with another value (or an unknown
one) is odd. Error findings are grouped by id with a Slurm host list. Nothing is run: the ``--exclude=``
list and the drain commands are printed for a person to use.

Memory stays linear and small: each node keeps its breaking values and its findings, not its facts.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor.diff import BREAKING, NOT_INSTALLED, breaking_values
from envdoctor.errors import EnvdoctorError
from envdoctor.facts import Facts, FactsError
from envdoctor.fleet.hostlist import compress

LOG_PREFIX = "@envdoctor-fleet"  # one line per node in a log: "@envdoctor-fleet HOST {check --json}"
UNKNOWN = "unknown"
TORCH = BREAKING[0].label  # "torch version"


class FleetInputError(EnvdoctorError, ValueError):
    """The input as a whole cannot be read (exit 2); one node's bad file only makes that node unknown."""


@dataclass
class Node:
    name: str
    values: dict[str, str] = field(default_factory=dict)  # breaking key -> value as text
    errors: list[tuple[str, str]] = field(default_factory=list)  # (finding id, message)
    problem: str | None = None  # why the node is unknown: unreadable file, check failed, probe timed out
    readable: bool = True  # False: nothing known of its facts


@dataclass
class KeyCount:
    key: str
    counts: list[tuple[str, int]]  # value -> nodes, most common first
    total: int
    majority: str | None  # None: no value is held by more than half


@dataclass
class Group:
    name: str | None  # the --group-by value, None for the whole fleet
    nodes: list[str]
    keys: list[KeyCount]
    odd: dict[str, list[tuple[str, str, str | None]]]  # node -> [(key, value, majority)]


@dataclass
class FleetReport:
    expected: int | None
    nodes: list[Node]
    missing: list[str]  # expected names that wrote nothing (empty when only a count was expected)
    missing_count: int
    groups: list[Group]
    group_by: str | None = None

    @property
    def unknown(self) -> list[Node]:
        return [n for n in self.nodes if n.problem is not None]

    @property
    def broken(self) -> list[Node]:
        return [n for n in self.nodes if n.errors]

    @property
    def odd(self) -> dict[str, list[tuple[str, str, str | None]]]:
        return {node: rows for g in self.groups for node, rows in g.odd.items()}

    @property
    def split(self) -> list[tuple[str | None, KeyCount]]:
        """Keys on which no value holds a majority (per group)."""
        return [(g.name, k) for g in self.groups for k in g.keys if k.majority is None and k.counts]

    @property
    def ok(self) -> bool:
        return not (self.missing_count or self.unknown or self.broken or self.odd or self.split)

    def finding_groups(self) -> list[tuple[str, str, list[str]]]:
        """(finding id, first message, nodes) for every error finding, most nodes first."""
        nodes: dict[str, list[str]] = defaultdict(list)
        message: dict[str, str] = {}
        for n in self.nodes:
            for fid, msg in n.errors:
                nodes[fid].append(n.name)
                message.setdefault(fid, msg)
        return sorted(((f, message[f], ns) for f, ns in nodes.items()), key=lambda r: (-len(r[2]), r[0]))

    def attention(self) -> list[str]:
        """Every node to keep out of a job: missing, unknown, broken or odd."""
        names = set(self.missing) | {n.name for n in self.unknown} | {n.name for n in self.broken}
        return sorted(names | set(self.odd))

    def drain_commands(self) -> list[str]:
        """scontrol lines for broken and odd nodes, one per reason (Slurm keeps one reason per node: its
        first error finding, else the keys it drifts on). Never for missing or unknown nodes: a node
        that could not answer may be fine; look before draining it."""
        reasons: dict[str, str] = {}
        for n in self.nodes:
            if n.errors:
                more = f" (+{len(n.errors) - 1} more)" if len(n.errors) > 1 else ""
                reasons[n.name] = f"envdoctor: {n.errors[0][0]}{more}"
        for node, rows in self.odd.items():
            reasons.setdefault(node, "envdoctor: drift: " + ", ".join(k for k, _v, _m in rows))
        by_reason: dict[str, list[str]] = defaultdict(list)
        for node, reason in reasons.items():
            by_reason[reason].append(node)
        return [_drain(names, reason) for reason, names in sorted(by_reason.items())]


def _drain(names: list[str], reason: str) -> str:
    return f'scontrol update nodename={compress(names)} state=drain reason="{reason}"'


def group_keys() -> dict[str, str]:
    """--group-by choices: a slug of each breaking key (``gpu-model``) -> its label."""
    return {re.sub(r"[^a-z0-9]+", "-", k.label.lower()).strip("-"): k.label for k in BREAKING}


def read_node(name: str, text: str) -> Node:
    """One node from the text of its file: a check result, or the error record of a check that failed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Node(
            name, problem=f"unreadable: not valid JSON (line {exc.lineno}: {exc.msg})", readable=False
        )
    if not isinstance(data, dict):
        return Node(name, problem="unreadable: not a check --json result", readable=False)
    if "error" in data and "facts" not in data:
        return Node(name, problem=f"check failed: {data['error']}", readable=False)
    try:
        facts = Facts.from_dict(data.get("facts", data))
    except (FactsError, TypeError, ValueError) as exc:
        return Node(name, problem=f"unreadable: {exc}", readable=False)
    node = Node(name, values={k: UNKNOWN if v is None else str(v) for k, v in breaking_values(facts).items()})
    for f in data.get("findings") or []:
        if isinstance(f, dict) and f.get("severity") == "error":
            node.errors.append((str(f.get("id")), str(f.get("message", ""))))
    if facts.probe_errors:
        node.problem = "probe " + "; ".join(f"{p}: {e}" for p, e in sorted(facts.probe_errors.items()))
    return node


def read_nodes(source: Path) -> list[Node]:
    """Nodes from a folder of ``{host}.json`` files, or from a log with one ``@envdoctor-fleet`` line
    per node (``kubectl logs`` of the Kubernetes Job). The last word of a file's name is the node."""
    if source.is_dir():
        nodes = []
        for path in sorted(source.glob("*.json")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                nodes.append(Node(path.stem, problem=f"unreadable: {exc.__class__.__name__}", readable=False))
                continue
            nodes.append(read_node(path.stem, text))
        return nodes
    try:
        lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise FleetInputError(f"{source}: no such file or folder") from None
    except OSError as exc:
        raise FleetInputError(f"{source}: cannot read ({exc.__class__.__name__}: {exc})") from None
    by_name: dict[str, Node] = {}
    for line in lines:
        # `kubectl logs --prefix` puts "[pod/NAME/container] " in front.
        at = line.find(LOG_PREFIX + " ")
        if at < 0:
            continue
        name, _, text = line[at + len(LOG_PREFIX) + 1 :].partition(" ")
        by_name[name] = read_node(name, text)
    if not by_name:
        raise FleetInputError(f"{source}: no '{LOG_PREFIX} HOST {{json}}' line and not a folder")
    return [by_name[n] for n in sorted(by_name)]


def build(
    nodes: list[Node], expected: int | list[str] | None = None, group_by: str | None = None
) -> FleetReport:
    names = {n.name for n in nodes}
    if isinstance(expected, list):
        missing = sorted(set(expected) - names)
        count: int | None = len(expected)
        missing_count = len(missing)
    else:
        missing, count = [], expected
        missing_count = max(0, (expected or 0) - len(nodes))
    readable = [n for n in nodes if n.readable]
    by_group: dict[str | None, list[Node]] = defaultdict(list)
    for n in readable:
        by_group[n.values.get(group_by, UNKNOWN) if group_by else None].append(n)
    groups = [_group(name, members) for name, members in sorted(by_group.items(), key=lambda g: str(g[0]))]
    return FleetReport(count, nodes, missing, missing_count, groups, group_by)


def _group(name: str | None, members: list[Node]) -> Group:
    keys: list[KeyCount] = []
    odd: defaultdict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    total = len(members)
    for key in BREAKING:
        counts = Counter(n.values[key.label] for n in members)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        majority = ranked[0][0] if ranked and ranked[0][1] * 2 > total else None
        keys.append(KeyCount(key.label, ranked, total, majority))
        if len(ranked) > 1 and majority is not None:  # no majority: the key is split, nobody is odd
            for n in members:
                value = n.values[key.label]
                if key.of_torch and n.values[TORCH] == NOT_INSTALLED:
                    continue  # the torch version row says it once
                if value != majority:
                    odd[n.name].append((key.label, value, majority))
    return Group(name, sorted(n.name for n in members), keys, dict(odd))


def to_dict(report: FleetReport) -> dict[str, Any]:
    """The verdict as JSON (``fleet report --json``)."""
    return {
        "ok": report.ok,
        "expected": report.expected,
        "reported": len(report.nodes),
        "missing": report.missing,
        "missing_count": report.missing_count,
        "unknown": {n.name: n.problem for n in report.unknown},
        "group_by": report.group_by,
        "groups": [
            {
                "group": g.name,
                "nodes": compress(g.nodes),
                "baseline": {
                    k.key: {"majority": k.majority, "counts": dict(k.counts), "total": k.total}
                    for k in g.keys
                },
                "odd": {
                    node: [{"key": key, "value": v, "majority": m} for key, v, m in rows]
                    for node, rows in sorted(g.odd.items())
                },
            }
            for g in report.groups
        ],
        "findings": [
            {"id": fid, "message": msg, "nodes": compress(names), "count": len(names)}
            for fid, msg, names in report.finding_groups()
        ],
        "exclude": compress(report.attention()),
        "drain": report.drain_commands(),
    }


def render_text(report: FleetReport) -> str:
    """The verdict for a person: counts, baseline per key, odd nodes, findings, what to exclude/drain."""
    out = [headline(report)]
    for g in report.groups:
        title = f"{report.group_by} = {g.name}: " if report.group_by else ""
        out.append(f"\n{title}baseline of {len(g.nodes)} node(s) ({compress(g.nodes)}):")
        for k in g.keys:
            top, top_n = k.counts[0]
            if k.majority is None:
                spread = ", ".join(f"{v}: {c}" for v, c in k.counts)
                out.append(f"  ✗ {k.key:<20} no majority ({spread})")
            elif len(k.counts) == 1:
                out.append(f"  ✓ {k.key:<20} {top}: {top_n}/{k.total}")
            else:
                others = ", ".join(f"{v}: {c}" for v, c in k.counts[1:])
                out.append(f"  ✗ {k.key:<20} {top}: {top_n}/{k.total}  (others {others})")
    if report.odd:
        out.append("\nOdd nodes (differ from the majority on a breaking key):")
        for node, rows in sorted(report.odd.items()):
            diffs = "; ".join(f"{key} {value} (majority {majority})" for key, value, majority in rows)
            out.append(f"  {node}: {diffs}")
    findings = report.finding_groups()
    if findings:
        out.append("\nError findings:")
        for fid, msg, names in findings:
            out.append(f"  {fid}  {compress(names)} ({len(names)})")
            out.append(f"      {msg}")
    if report.unknown:
        out.append("\nUnknown nodes (no verdict: never counted as healthy):")
        out += [f"  {n.name}: {n.problem}" for n in report.unknown]
    if report.missing:
        out.append(f"\nMissing nodes: {compress(report.missing)}")
    attention = report.attention()
    if attention:
        out.append("\nKeep them out of jobs:")
        out.append(f"  --exclude={compress(attention)}")
        drains = report.drain_commands()
        if drains:
            out.append("Drain them (printed, not run):")
            out += [f"  {line}" for line in drains]
    return "\n".join(out) + "\n"


def headline(report: FleetReport) -> str:
    """The one-line verdict: counts, then healthy or how many nodes need attention."""
    reported = len(report.nodes)
    expected = f"{report.expected} expected, " if report.expected is not None else ""
    parts = [f"{expected}{reported} reported"]
    if report.missing_count:
        parts.append(f"{report.missing_count} missing")
    for label, count in (
        ("unknown", len(report.unknown)),
        ("broken", len(report.broken)),
        ("odd", len(report.odd)),
    ):
        if count:
            parts.append(f"{count} {label}")
    needs = len(report.attention()) + report.missing_count - len(report.missing)  # unnamed missing ones
    verdict = "consistent and healthy" if report.ok else f"{needs} node(s) need attention"
    if not report.ok and report.split and not needs:
        verdict = "no majority on " + ", ".join(sorted({k.key for _g, k in report.split}))
    return f"envdoctor fleet: {', '.join(parts)}: {verdict}"
