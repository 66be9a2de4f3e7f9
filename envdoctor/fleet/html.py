"""``fleet report --format html``: the fleet verdict as one self-contained page (inline CSS, no script,
no network), for a person to look at rather than read: the verdict, the drift matrix (nodes x breaking
keys, values off the majority marked), the findings with their host lists, the nodes, and what to do.

Nodes that match the baseline on every key and have no finding are folded into one row of the matrix,
so a 1 000-node fleet stays a page of the nodes that matter.
"""

from __future__ import annotations

from html import escape

from envdoctor.diff import BREAKING
from envdoctor.fleet.hostlist import compress
from envdoctor.fleet.report import FleetReport, Group

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#1b1f24;
padding:0 1em}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .5em}
.verdict{padding:.8em 1em;border-radius:6px;font-weight:600;margin-bottom:1em}
.verdict.ok{background:#dafbe1;color:#116329}.verdict.bad{background:#ffebe9;color:#a40e26}
.counts{display:flex;gap:.6em;flex-wrap:wrap;margin:.4em 0 1em}
.count{border:1px solid #d0d7de;border-radius:6px;padding:.3em .8em}.count b{font-size:1.2em}
table{border-collapse:collapse;margin:.3em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}
td.odd{background:#ffebe9;color:#a40e26;font-weight:600}td.split{background:#fff8c5}
td.same{color:#57606a}tr.fold td{font-style:italic;color:#57606a}
.tag{display:inline-block;border-radius:10px;padding:0 .6em;font-size:12px;font-weight:600}
.tag.healthy{background:#dafbe1;color:#116329}.tag.odd,.tag.broken{background:#ffebe9;color:#a40e26}
.tag.unknown,.tag.missing{background:#fff8c5;color:#7d4e00}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6em;overflow-x:auto}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
"""


def render_html(report: FleetReport) -> str:
    """The whole page."""
    from envdoctor.fleet.report import render_text

    headline = render_text(report).splitlines()[0].removeprefix("envdoctor fleet: ")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>envdoctor fleet report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>envdoctor fleet report</h1>",
        f'<div class="verdict {"ok" if report.ok else "bad"}" id="verdict">{escape(headline)}</div>',
        _counts(report),
    ]
    for g in report.groups:
        parts.append(_matrix(report, g))
    parts.append(_findings(report))
    parts.append(_nodes(report))
    parts.append(_actions(report))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def _counts(report: FleetReport) -> str:
    items = [
        ("expected", report.expected if report.expected is not None else "?"),
        ("reported", len(report.nodes)),
        ("missing", report.missing_count),
        ("unknown", len(report.unknown)),
        ("broken", len(report.broken)),
        ("odd", len(report.odd)),
    ]
    cells = "".join(f'<span class="count" data-count="{k}"><b>{v}</b> {k}</span>' for k, v in items)
    return f'<div class="counts">{cells}</div>'


def _matrix(report: FleetReport, g: Group) -> str:
    """Rows: the majority, then every node that differs or has a finding; columns: the breaking keys."""
    title = f"{report.group_by} = {g.name}: " if report.group_by else ""
    keys = [k.label for k in BREAKING]
    counts = {k.key: k for k in g.keys}
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    base_cells = []
    for k in keys:
        kc = counts[k]
        if kc.majority is None:
            spread = ", ".join(f"{v}: {c}" for v, c in kc.counts)
            base_cells.append(f'<td class="split">no majority ({escape(spread)})</td>')
        else:
            n = dict(kc.counts)[kc.majority]
            base_cells.append(f"<td>{escape(kc.majority)} <small>{n}/{kc.total}</small></td>")
    rows = [f'<tr class="baseline"><th>majority</th>{"".join(base_cells)}</tr>']
    by_name = {n.name: n for n in report.nodes}
    flagged = [name for name in g.nodes if name in g.odd or by_name[name].errors]
    for name in flagged:
        node = by_name[name]
        odd_keys = {key for key, _v, _m in g.odd.get(name, [])}
        cells = []
        for k in keys:
            cls = "odd" if k in odd_keys else "same"
            cells.append(f'<td class="{cls}">{escape(node.values.get(k, "unknown"))}</td>')
        rows.append(
            f'<tr class="node" data-node="{escape(name)}"><th>{escape(name)}</th>{"".join(cells)}</tr>'
        )
    rest = [name for name in g.nodes if name not in set(flagged)]
    if rest:
        label = f"{len(rest)} node(s) match the majority: {compress(rest)}"
        rows.append(f'<tr class="fold"><td colspan="{len(keys) + 1}">{escape(label)}</td></tr>')
    return (
        f"<h2>{escape(title)}Drift matrix</h2>"
        f'<table class="matrix"><thead><tr><th>node</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _findings(report: FleetReport) -> str:
    groups = report.finding_groups()
    if not groups:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(fid)}</code></td><td>{len(names)}</td><td><code>{escape(compress(names))}</code>"
        f"</td><td>{escape(msg)}</td></tr>"
        for fid, msg, names in groups
    )
    return (
        '<h2>Error findings</h2><table class="findings"><thead><tr><th>finding</th><th>nodes</th>'
        f"<th>host list</th><th>first message</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _nodes(report: FleetReport) -> str:
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
        return ""
    body = "".join(
        f'<tr><td>{escape(name)}</td><td><span class="tag {status}">{status}</span></td><td>{escape(why)}</td></tr>'
        for name, status, why in rows
    )
    return (
        '<h2>Nodes that need attention</h2><table class="nodes"><thead><tr><th>node</th><th>status</th>'
        f"<th>why</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _actions(report: FleetReport) -> str:
    attention = report.attention()
    if not attention:
        return ""
    lines = [f"--exclude={compress(attention)}"]
    drains = report.drain_commands()
    out = f'<h2>Keep them out of jobs</h2><pre id="exclude"><code>{escape(lines[0])}</code></pre>'
    if drains:
        out += '<h2>Drain them (printed here, never run)</h2><pre id="drain"><code>'
        out += escape("\n".join(drains)) + "</code></pre>"
    return out
