"""Rendering of a smoke-train result: the checks, the per-precision table, and an SVG loss curve.

The SVG is written by hand (a few polylines on a log-scale axis) so that no plotting library is
needed in the environment being checked.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from envdoctor.smoke.verdict import Check

COLOURS = {"fp32": "#1f77b4", "bf16": "#2ca02c", "fp16": "#ff7f0e", "fp8": "#d62728"}
MARK = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]–[/yellow]"}


def human_bytes(count: int | None) -> str:
    if count is None:
        return "?"
    n = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def precision_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """precision | tokens/s | peak memory | GB/sample | final loss | accuracy | long context, as measured.

    ``tokens_per_s`` is the training run's own figure; with interleaved speed rounds (``--precision
    all``) the row also has their median, min and max, and with the probe its two exact matches.
    """
    speed = result.get("speed") or {}
    rows = []
    for run in result["runs"]:
        if "unsupported" in run:
            rows.append({"precision": run["precision"], "status": run["unsupported"]})
            continue
        peak = run.get("peak_memory_bytes")
        row = {
            "precision": run["precision"],
            "tokens_per_s": run.get("tokens_per_s"),
            "peak_memory_bytes": peak,
            "gb_per_sample": peak / 1e9 / run["micro_batch"] if peak is not None else None,
            "final_loss": run["history"][-1] if run["history"] else None,
            "accuracy": run.get("accuracy"),
            "status": "nonfinite" if run["bad_step"] is not None else "ok",
        }
        rounds = speed.get("tokens_per_s", {}).get(run["precision"])
        if rounds:
            row.update(
                tokens_per_s_median=speed["median"][run["precision"]],
                tokens_per_s_min=min(rounds),
                tokens_per_s_max=max(rounds),
            )
        probe = run.get("long_context")
        if probe:
            row.update(long_context_pam=probe["pam"], long_context_full=probe["full"])
        rows.append(row)
    return rows


def _probe(result: dict[str, Any]) -> dict[str, Any] | None:
    return next((r["long_context"] for r in result["runs"] if r.get("long_context")), None)


def _print_table(result: dict[str, Any], console: Console) -> None:
    """The per-precision table (short headers: it fits 80 columns) and the lines that explain it."""
    speed, probe = result.get("speed"), _probe(result)
    columns = ["precision", "tokens/s median" if speed else "tokens/s", "peak memory", "GB/sample"]
    columns += ["final loss", "accuracy"]
    if probe:
        columns.append(f"{probe['task']} {probe['length']}: PAM / full")
    table = Table(box=box.SIMPLE_HEAD)  # no side rules, headers wrapped at spaces: fits 80 columns
    for header in columns:
        table.add_column(header, min_width=max(map(len, header.split())))
    rows = precision_rows(result)
    for row in rows:
        if "tokens_per_s" not in row:
            table.add_row(row["precision"], row["status"], *[""] * (len(columns) - 2))
            continue
        cells = [
            row["precision"],
            _fmt(row.get("tokens_per_s_median", row["tokens_per_s"]), ",.0f"),
            human_bytes(row["peak_memory_bytes"]),
            _fmt(row["gb_per_sample"], ".4f"),
            _fmt(row["final_loss"], ".4f"),
            _fmt(row["accuracy"], ".1%"),
        ]
        if probe:
            cells.append(
                f"{_fmt(row.get('long_context_pam'), '.1%')} / {_fmt(row.get('long_context_full'), '.1%')}"
            )
        table.add_row(*cells)
    console.print(table)
    memory = next((r["memory_method"] for r in result["runs"] if "memory_method" in r), "")
    console.print(f"peak memory: {memory}; GB/sample = peak memory / micro-batch size")
    if speed:
        ranges = ", ".join(
            f"{r['precision']} {r['tokens_per_s_min']:,.0f}–{r['tokens_per_s_max']:,.0f}"
            for r in rows
            if "tokens_per_s_min" in r
        )
        load = " → ".join(f"{x:.1f}" for x in speed["load_average"])
        console.print(
            f"tokens/s: median of {speed['rounds']} rounds of {speed['steps_per_round']} steps, every "
            f"precision in each round (order rotated), after the training runs; min–max: {ranges}; "
            f"load average (1 min) {load}",
            highlight=False,
        )
    if probe:
        console.print(
            f"{probe['task']} {probe['length']}: exact match on held-out examples of {probe['length']} tokens whose answer (the "
            f"digit at position 0, asked at the end) lies beyond PAM's {probe['window']}-token window; "
            f"PAM and full attention each trained {probe['steps']} steps x {probe['batch']} on the same "
            "batches under that precision",
            highlight=False,
        )


def row_line(run: dict[str, Any]) -> str:
    """One finished precision as a line, printed the moment it finishes (and kept after a timeout)."""
    (row,) = precision_rows({"runs": [run]})
    if "tokens_per_s" not in row:
        return f"{row['precision']}: {row['status']}"
    status = "" if row["status"] == "ok" else f" ({row['status']})"
    probe = ""
    if "long_context_pam" in row:
        probe = f", long context {row['long_context_pam']:.1%} PAM / {row['long_context_full']:.1%} full"
    return (
        f"{row['precision']}: final loss {_fmt(row['final_loss'], '.4f')}, accuracy {_fmt(row['accuracy'], '.1%')}, "
        f"{_fmt(row['tokens_per_s'], ',.0f')} tokens/s, peak memory {human_bytes(row['peak_memory_bytes'])}"
        f"{probe}{status}"
    )


def describe_threads(policy: dict[str, Any]) -> str:
    return (
        f"{policy['threads']}, OMP_WAIT_POLICY={policy['wait_policy']} ({policy['source']}: "
        f"{policy['cpus']} CPU(s) usable, {policy['local_ranks']} rank(s) on this node)"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def print_text(result: dict[str, Any], checks: list[Check], plot: Path | None, console: Console) -> None:
    env, model = result["environment"], result["model"]
    where = f"{env['device_name']} ({env['device']})" + (
        f", {env['world_size']} ranks {env['backend']}" if env["world_size"] > 1 else ""
    )
    console.print(
        f"torch {env['torch']} on {where}; {model['params']:,} parameters, attention {model['attention']}"
        f" ({model['stages']} stages), task {result['task']['name']}"
    )
    if "selected_branch" in model:
        console.print(f"PAM's selected branch: {model['selected_branch']}", highlight=False)
    if "thread_policy" in env:
        console.print(f"CPU threads per rank: {describe_threads(env['thread_policy'])}", highlight=False)
    if len(result["runs"]) > 1:
        _print_table(result, console)
    checks_table = Table("", "check", "figure", show_header=False, box=None)
    for c in checks:
        figure = c.figure + (f"  [{c.finding}]" if c.finding else "")
        checks_table.add_row(MARK[c.ok], escape_markup(c.name), escape_markup(figure))
    console.print(checks_table)
    if plot is not None:
        console.print(f"loss curve: {plot}")


def loss_svg(result: dict[str, Any], width: int = 640, height: int = 360) -> str:
    """Training loss per step, one line per precision, log-scale y axis."""
    curves = {r["precision"]: r["history"] for r in result["runs"] if r.get("history")}
    left, right, top, bottom = 60, 110, 20, 40
    pw, ph = width - left - right, height - top - bottom
    values = [v for h in curves.values() for v in h if v > 0 and math.isfinite(v)] or [1.0]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    steps = max((len(h) for h in curves.values()), default=1)

    def xy(i: int, v: float) -> str:
        x = left + pw * i / max(1, steps - 1)
        y = top + ph * (hi - math.log10(max(v, 10.0**lo))) / (hi - lo)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">step</text>',
        f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
        'text-anchor="middle">loss</text>',
    ]
    for e in range(lo, hi + 1):
        y = top + ph * (hi - e) / (hi - lo)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
    parts.append(f'<text x="{left}" y="{top + ph + 16}" text-anchor="middle">0</text>')
    parts.append(f'<text x="{left + pw}" y="{top + ph + 16}" text-anchor="middle">{steps}</text>')
    for n, (precision, history) in enumerate(curves.items()):
        colour = COLOURS.get(precision, "#000")
        points = " ".join(xy(i, v) for i, v in enumerate(history) if math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        y = top + 14 + 18 * n
        parts.append(f'<text x="{left + pw + 10}" y="{y}" fill="{colour}">{escape(precision)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_plot(result: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(loss_svg(result))
    tmp.replace(path)
