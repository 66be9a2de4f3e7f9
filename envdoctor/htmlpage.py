"""A small builder for self-contained HTML pages: escaped markup, sections, tables, folds, commands.

Every page carries its CSS and its one script inline: it opens from a file, an e-mail or a CI artifact
with no network, no external font, no external script. It prints (folds open, copy buttons hidden)
and it passes the W3C validator. Nothing here knows about facts or findings: ``render_html`` builds
the check and diff pages from these parts and ``fleet.html`` the fleet page, so all share one look::

    from envdoctor.htmlpage import page, section, table, fold, command, badge, tag
    body = section("Nodes", table(["node", "status"], [["a", badge("ok")], ["b", badge("error")]]))
    html_text = page("Nodes", body, subtitle="2 nodes")

Text is escaped wherever it goes in; :class:`Markup` (what the builders return) is not escaped again.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

# Status -> (mark, CSS class): the same marks as the text report.
STATUSES = {
    "ok": ("✓", "ok"),
    "info": ("✓", "ok"),
    "warning": ("!", "warning"),
    "error": ("✗", "error"),
    "unknown": ("?", "unknown"),
}

CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --bg:#ffffff; --code:#f6f8fa;
  --ok:#1a7f37; --warning:#9a6700; --error:#cf222e; --unknown:#57606a;
  --error-bg:#ffebe9; --warning-bg:#fff8c5; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 70rem; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; }
h3 { font-size: 1rem; margin: 0; }
.subtitle { color: var(--muted); margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; background: var(--code); }
td.mark, th.mark { width: 2rem; text-align: center; }
td.error { background: var(--error-bg); color: var(--error); font-weight: 700; }
td.warning { background: var(--warning-bg); }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
code { background: var(--code); padding: 0 .25rem; border-radius: 4px; overflow-wrap: break-word; }
pre code { padding: 0; }
.badge { display: inline-block; min-width: 1.5rem; padding: 0 .45rem; border-radius: 1rem; color: #fff;
  font-weight: 700; text-align: center; }
.badge.ok { background: var(--ok); } .badge.warning { background: var(--warning); }
.badge.error { background: var(--error); } .badge.unknown { background: var(--unknown); }
.verdict { font-size: 1.1rem; padding: .75rem 1rem; border-radius: 6px; border: 2px solid var(--line); }
.verdict.ok { border-color: var(--ok); } .verdict.warning { border-color: var(--warning); }
.verdict.error { border-color: var(--error); }
.card { border: 1px solid var(--line); border-left-width: 5px; border-radius: 6px; padding: .75rem 1rem;
  margin: .75rem 0; break-inside: avoid; }
.card.ok { border-left-color: var(--ok); } .card.warning { border-left-color: var(--warning); }
.card.error { border-left-color: var(--error); }
.card p { margin: .4rem 0; }
.muted { color: var(--muted); }
.cmd { display: flex; align-items: flex-start; gap: .5rem; margin: .4rem 0; }
.cmd pre { flex: 1; margin: 0; padding: .5rem .75rem; background: var(--code); border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.cmd button { font: inherit; font-size: 13px; padding: .35rem .7rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); cursor: pointer; }
details { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .75rem; margin: .5rem 0; }
summary { cursor: pointer; font-weight: 600; }
footer { margin-top: 2rem; color: var(--muted); font-size: 13px; }
@media print {
  body { max-width: none; padding: 0; font-size: 12px; }
  .cmd button { display: none; }
  details { border: none; padding: 0; }
  code { overflow-wrap: anywhere; }
  a { color: inherit; }
}
"""

# Copy buttons, and folds opened for printing (the browser prints a closed <details> closed).
SCRIPT = """
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var text = button.parentElement.querySelector("pre").textContent;
  function done() { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
  } else { fallback(text); done(); }
  function fallback(value) {
    var area = document.createElement("textarea");
    area.value = value; document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (e) {}
    area.remove();
  }
});
var closedForPrint = [];
window.addEventListener("beforeprint", function () {
  closedForPrint = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
  closedForPrint.forEach(function (d) { d.open = true; });
});
window.addEventListener("afterprint", function () { closedForPrint.forEach(function (d) { d.open = false; }); });
"""


class Markup(str):
    """HTML that is already safe: builders return it, :func:`render` leaves it as it is."""


def render(content: object) -> Markup:
    """Markup as is, text escaped, None as nothing, lists and tuples joined."""
    if content is None:
        return Markup("")
    if isinstance(content, Markup):
        return content
    if isinstance(content, (list, tuple)):
        return Markup("".join(render(c) for c in content))
    return Markup(html.escape(str(content), quote=True))


def tag(name: str, *children: object, **attrs: str | None) -> Markup:
    """``<name attrs>children</name>``; ``class_`` for ``class``, ``data_x`` for ``data-x``."""
    parts = [name]
    for key, value in attrs.items():
        if value is None:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(f'{attr}="{html.escape(value, quote=True)}"')
    return Markup(f"<{' '.join(parts)}>{render(list(children))}</{name}>")


def badge(status: str, label: str | None = None) -> Markup:
    """The status mark (✓ ! ✗ ?) in its colour; ``label`` replaces the mark's text."""
    mark, cls = STATUSES.get(status, STATUSES["unknown"])
    return tag("span", label if label is not None else mark, class_=f"badge {cls}", title=status)


def status_class(status: str) -> str:
    return STATUSES.get(status, STATUSES["unknown"])[1]


def table(headers: Sequence[object], rows: Iterable[Sequence[object]], mark_column: bool = False) -> Markup:
    """A table; with ``mark_column`` the first column is narrow and centred (badges).

    A row is its cells, or a ready ``<tr>`` (:class:`Markup`) where the row needs attributes of its own,
    a header cell or a cell spanning columns. A cell marked by status (``td class="error"``) is tinted.
    """

    def cells(row: Sequence[object], cell: str) -> Markup:
        return render(
            [tag(cell, c, class_="mark" if mark_column and i == 0 else None) for i, c in enumerate(row)]
        )

    head = tag("thead", tag("tr", cells(headers, "th")))
    body = [r if isinstance(r, Markup) else tag("tr", cells(r, "td")) for r in rows]
    return tag("table", head, tag("tbody", body))


def fold(summary: object, *children: object, open: bool = False) -> Markup:
    """A collapsible ``<details>`` (opened for printing)."""
    return Markup(
        f"<details{' open' if open else ''}>{tag('summary', summary)}{render(list(children))}</details>"
    )


def command(text: str) -> Markup:
    """A shell command in a block with a Copy button."""
    return tag(
        "div", tag("pre", tag("code", text)), tag("button", "Copy", type="button", data_copy=""), class_="cmd"
    )


def section(title: object, *children: object, id: str | None = None) -> Markup:
    return tag("section", tag("h2", title), *children, id=id)


def card(status: str, title: object, *children: object) -> Markup:
    """A bordered block coloured by status (one finding, one node)."""
    return tag("div", tag("h3", title), *children, class_=f"card {status_class(status)}")


def verdict(status: str, text: object) -> Markup:
    """The one-line verdict at the top of a page."""
    return tag("p", badge(status), " ", text, class_=f"verdict {status_class(status)}")


def page(title: str, *children: object, subtitle: object = None, footer: object = None) -> str:
    """A whole HTML5 document, CSS and script inline."""
    head = (
        '<meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
    )
    body = render(
        [
            tag("header", tag("h1", title), tag("p", subtitle, class_="subtitle") if subtitle else None),
            tag("main", *children),
            tag("footer", footer) if footer else None,
        ]
    )
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body>{body}<script>{SCRIPT}</script></body></html>\n'
