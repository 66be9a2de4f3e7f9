"""``fleet report --format html``: the fleet verdict as one self-contained page, for a person to look at
rather than read: the verdict, the drift matrix (nodes x breaking keys, values off the majority marked),
the findings with their host lists, the nodes, and what to do. Built from :mod:`envdoctor.htmlpage`, so
it has the look, the escaping and the offline guarantees of the check and diff pages.

Nodes that match the baseline on every key and have no finding are folded into one row of the matrix,
so a 1 000-node fleet stays a page of the nodes that matter.
"""

from __future__ import annotations

from envdoctor import __version__
from envdoctor.diff import BREAKING
from envdoctor.fleet.hostlist import compress
from envdoctor.fleet.report import FleetReport, Group, headline
from envdoctor.htmlpage import Markup, badge, command, page, section, table, tag, verdict

# A node's status in the attention list -> the status colour of its badge.
NODE_STATUS = {"broken": "error", "odd": "error", "unknown": "warning", "missing": "warning"}


def render_html(report: FleetReport) -> str:
    """The whole page."""
    text = headline(report).removeprefix("envdoctor fleet: ")
    body: list[object] = [verdict("ok" if report.ok else "error", text)]
    body += [_matrix(report, g) for g in report.groups]
    body += [_findings(report), _nodes(report), *_actions(report)]
    return page("envdoctor fleet report", *body, footer=f"envdoctor {__version__}")


def _matrix(report: FleetReport, g: Group) -> Markup:
    """Rows: the majority, then every node that differs or has a finding; columns: the breaking keys."""
    title = f"{report.group_by} = {g.name}: " if report.group_by else ""
    keys = [k.label for k in BREAKING]
    counts = {k.key: k for k in g.keys}
    baseline = []
    for k in keys:
        kc = counts[k]
        if kc.majority is None:
            spread = ", ".join(f"{v}: {c}" for v, c in kc.counts)
            baseline.append(tag("td", f"no majority ({spread})", class_="warning"))
        else:
            share = f"{dict(kc.counts)[kc.majority]}/{kc.total}"
            baseline.append(tag("td", kc.majority, " ", tag("small", share, class_="muted")))
    rows = [tag("tr", tag("th", "majority"), baseline)]
    by_name = {n.name: n for n in report.nodes}
    flagged = [name for name in g.nodes if name in g.odd or by_name[name].errors]
    for name in flagged:
        odd_keys = {key for key, _v, _m in g.odd.get(name, [])}
        cells = [
            tag("td", by_name[name].values.get(k, "unknown"), class_="error" if k in odd_keys else "muted")
            for k in keys
        ]
        rows.append(tag("tr", tag("th", name), cells, data_node=name))
    rest = [name for name in g.nodes if name not in set(flagged)]
    if rest:
        label = f"{len(rest)} node(s) match the majority: {compress(rest)}"
        rows.append(tag("tr", tag("td", label, colspan=str(len(keys) + 1), class_="muted"), data_rest=""))
    return section(f"{title}Drift matrix", table(["node", *keys], rows))


def _findings(report: FleetReport) -> Markup | None:
    groups = report.finding_groups()
    if not groups:
        return None
    rows = [[tag("code", fid), len(names), tag("code", compress(names)), msg] for fid, msg, names in groups]
    return section(
        "Error findings", table(["finding", "nodes", "host list", "first message"], rows), id="findings"
    )


def _nodes(report: FleetReport) -> Markup | None:
    """Every node that needs attention, with why (healthy nodes are counted above, not listed)."""
    rows = []
    odd = report.odd
    for n in report.nodes:
        if n.problem:
            status, why = "unknown", n.problem
        elif n.errors:
            status, why = "broken", "; ".join(f"{fid}: {msg}" for fid, msg in n.errors)
        elif n.name in odd:
            status, why = "odd", "; ".join(f"{k} {v} (majority {m})" for k, v, m in odd[n.name])
        else:
            continue
        rows.append((n.name, status, why))
    rows += [(name, "missing", "expected, wrote nothing") for name in report.missing]
    if not rows:
        return None
    cells = [[name, badge(NODE_STATUS[status], status), why] for name, status, why in rows]
    return section("Nodes that need attention", table(["node", "status", "why"], cells), id="nodes")


def _actions(report: FleetReport) -> list[Markup]:
    attention = report.attention()
    if not attention:
        return []
    out = [section("Keep them out of jobs", command(f"--exclude={compress(attention)}"), id="exclude")]
    drains = report.drain_commands()
    if drains:
        out.append(section("Drain them (printed here, never run)", command("\n".join(drains)), id="drain"))
    return out
