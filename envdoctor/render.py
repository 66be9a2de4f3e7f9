"""Rendering of facts and findings: the grouped text report, markdown for issues, and JSON.

The text report follows `flutter doctor`: one line per area with ✓ / ! / ✗, then each finding with
its id, diagnosis, evidence, fix and source. Nothing here decides anything: it only formats.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from envdoctor.advice import Advice
from envdoctor.facts import SCHEMA_VERSION, Facts
from envdoctor.findings import Area, Finding, Severity
from envdoctor.readers import torch_build_version, torch_cuda, torch_hip

if TYPE_CHECKING:
    from envdoctor.explain import Unsettled
    from envdoctor.rules import Rule

AREAS: dict[Area, str] = {
    "system": "System",
    "nvidia": "NVIDIA driver & GPUs",
    "cuda": "CUDA toolkit & libraries",
    "torch": "PyTorch",
    "packages": "Python packages",
    "container": "Docker / container",
}
# Probe name -> report area, for probe crash lines.
PROBE_AREAS: dict[str, Area] = {"system": "system", "target": "packages", "nvidia": "nvidia", "cuda": "cuda"}
PROBE_AREAS |= {"torch": "torch", "docker": "container", "toolchain": "cuda"}

# One mark per status, never shared: ✓ means checked and fine, nothing else. "crashed" is a probe of the
# area that crashed, timed out or failed (flutter doctor's ☠), "absent" an area with nothing to check
# (no driver, no torch) or nothing known (a pasted report that does not cover it).
AreaStatus = Literal["ok", "absent", "crashed"]
MARKS: dict[Severity | AreaStatus, str] = {
    "ok": "✓",
    "absent": "-",
    "crashed": "☠",
    Severity.INFO: "i",
    Severity.WARNING: "!",
    Severity.ERROR: "✗",
}
STYLES: dict[Severity | AreaStatus, str] = {
    "ok": "green",
    "absent": "dim",
    "crashed": "red",
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.ERROR: "red",
}
# Probe statuses (facts.nvidia.error, facts.torch.status, facts.docker.status) that say the probe failed.
FAILED_STATUSES = frozenset({"timeout", "crashed", "error", "import-error"})


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


def area_of(finding: Finding) -> Area:
    """The report area of a finding, from its rule (findings without a rule go under System)."""
    from envdoctor.rules import all_rules

    for r in all_rules():
        if r.id == finding.id:
            return r.area
    return "system"


@dataclass
class AreaLine:
    key: Area
    title: str
    status: Severity | AreaStatus  # the worst severity of its findings, else "crashed", "absent" or "ok"
    summary: str
    crashed: str | None = None


def area_lines(facts: Facts, findings: list[Finding]) -> list[AreaLine]:
    """One line per area: the worst finding decides the mark, the facts give the summary."""
    lines = []
    for key, title in AREAS.items():
        severities = [f.severity for f in findings if area_of(f) == key]
        crashed = "; ".join(f"{p}: {e}" for p, e in facts.probe_errors.items() if PROBE_AREAS.get(p) == key)
        status: Severity | AreaStatus
        if Severity.ERROR in severities:
            status = Severity.ERROR
        elif crashed or _probe_failed(key, facts):
            status = "crashed"
        elif severities:
            worst: Severity = min(severities, key=lambda s: s.rank)
            status = worst
        else:
            summary = _summary(key, facts)
            status = "absent" if summary == "unknown" or _absent(key, facts) else "ok"
        lines.append(AreaLine(key, title, status, _summary(key, facts), crashed or None))
    return lines


def _probe_failed(area: str, facts: Facts) -> bool:
    """The probe of ``area`` ran and failed (timed out, crashed): its area is never shown as fine."""
    status = {"nvidia": facts.nvidia.error, "torch": facts.torch.status, "container": facts.docker.status}
    return status.get(area) in FAILED_STATUSES


def _absent(area: str, facts: Facts) -> bool:
    """Nothing of ``area`` is here to check (no driver, no torch): not a failure, not a ✓ either."""
    if area == "nvidia":
        return facts.nvidia.error is not None
    if area == "torch":
        return facts.torch.status in ("missing", "skipped") and torch_build_version(facts) is None
    return False


def _summary(area: str, facts: Facts) -> str:
    """A short human summary of the facts of one area ('unknown' parts are left out)."""
    s, py, nv, cu, pk, t, d = (
        facts.system,
        facts.python,
        facts.nvidia,
        facts.cuda,
        facts.packages,
        facts.torch,
        facts.docker,
    )
    parts: list[str | None] = []
    if area == "system":
        mem = f"{s.memory_total_mib // 1024} GiB" if s.memory_total_mib else None
        cpus = f"{s.cpu_count} CPUs" if s.cpu_count else None
        pyv = f"Python {py.version}" + (f" ({py.env_kind})" if py.env_kind else "") if py.version else None
        parts = [s.os, s.arch, cpus, mem, pyv]
    elif area == "nvidia":
        if nv.error:
            parts = [nv.error + (f": {nv.error_detail}" if nv.error_detail else "")]
        else:
            drv = f"driver {nv.driver_version}" if nv.driver_version else None
            cuda = f"CUDA ≤ {nv.cuda_driver_version}" if nv.cuda_driver_version else None
            gpus = None
            if nv.gpus:
                kinds = Counter(f"{g.name} (sm {g.compute_capability or '?'})" for g in nv.gpus)
                gpus = ", ".join(f"{n}× {kind}" for kind, n in sorted(kinds.items()))
            others = None
            if s.other_gpus:
                others = f"{len(s.other_gpus)}× {', '.join(sorted(set(s.other_gpus)))} (not NVIDIA)"
            parts = [drv, cuda, gpus, others]
    elif area == "cuda":
        nvcc = f"nvcc {cu.nvcc_version}" if cu.nvcc_version else None
        libs = f"{len(cu.libraries)} CUDA libraries found" if cu.libraries is not None else None
        wheels = f"{len(pk.nvidia_wheels)} CUDA wheels (nvidia-*)" if pk.nvidia_wheels else None
        # CUDA_HOME=... only when the variable is set; a toolkit found at /usr/local/cuda is not that.
        set_home = (s.env or {}).get("CUDA_HOME")
        home = f"CUDA_HOME={set_home}" if set_home else f"toolkit at {cu.cuda_home}" if cu.cuda_home else None
        tc = facts.toolchain
        tools = [f"gcc {tc.gcc}" if tc.gcc else None, f"no {', '.join(tc.missing)}" if tc.missing else None]
        parts = [nvcc, home, libs, wheels, *tools]
    elif area == "torch":
        version = torch_build_version(facts)
        if t.status in ("ok", "unknown", "skipped") and version:
            build, hip = torch_cuda(facts), torch_hip(facts)
            # A pasted report may give the version without the build: unknown is not "CPU".
            known = t.status == "ok" or pk.torch_build is not None
            kind = f"CUDA {build}" if build else f"ROCm {hip}" if hip else "CPU build" if known else None
            avail = None
            if t.cuda_available is not None:
                # What torch sees, not a promise: seen GPUs may lack kernels (arch-not-in-wheel says so).
                count = f"{t.device_count} " if t.device_count is not None else ""
                avail = f"sees {count}GPU(s)" if t.cuda_available else "sees no GPU"
            parts = [
                f"torch {version}",
                kind,
                avail,
                "not imported (--quick)" if t.status == "skipped" else None,
            ]
        elif t.status == "skipped" and pk.versions is not None and "torch" not in pk.versions:
            parts = ["not installed (from the package list; --quick)"]
        else:
            parts = [t.status + (f": {t.error}" if t.error else "")]
    elif area == "packages":
        if pk.versions is not None:
            versions = dict(pk.versions)
            if t.numpy_version and "numpy" not in versions:
                versions["numpy"] = t.numpy_version  # seen from inside the torch process
            cuda_wheels = pk.nvidia_wheels or {}
            shown = [f"{k} {v}" for k, v in sorted(versions.items()) if k != "torch" and k not in cuda_wheels]
            more = f" (+{len(shown) - 6})" if len(shown) > 6 else ""
            nothing = "no tracked ML package" + (" besides torch" if "torch" in versions else "")
            parts = [", ".join(shown[:6]) + more if shown else nothing]
        if pk.unmet:
            parts.append(f"{len(pk.unmet)} unmet requirement(s)")
    elif area == "container":
        where = None
        if s.in_container is not None:
            where = (
                f"in a container ({s.container_kind or 'unknown kind'})"
                if s.in_container
                else "not in a container"
            )
        shm = f"/dev/shm {s.shm_size_mib} MiB" if s.shm_size_mib is not None else None
        engine = None
        if d.status == "ok":
            runtimes = ", ".join(d.runtimes or []) or "none"
            engine = f"Docker {d.server_version} (runtimes: {runtimes})"
        elif d.status not in ("unknown",):
            engine = f"Docker: {d.status}"
        parts = [where, shm, engine]
    text = ", ".join(p for p in parts if p)
    return text or "unknown"


def _evidence_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fix_lines(finding: Finding, advice: Advice | None) -> list[str]:
    """The plan's commands for a finding when the planner has them, else the rule's one-line fix."""
    planned = advice.commands.get(finding.id) if advice is not None else None
    return planned or ([finding.fix] if finding.fix else [])


def print_text(
    facts: Facts,
    findings: list[Finding],
    verbose: bool = False,
    advice: Advice | None = None,
    settle: Unsettled | None = None,
) -> None:
    """The grouped, coloured report (rich) on stdout; ``advice`` gives the planned fix commands,
    ``settle`` what a paste that left the cause undiagnosed gave and the report to ask for."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    origin = {"report": " (from a pasted report)", "file": " (from a facts file)"}.get(facts.origin, "")
    console.print(f"[bold]envdoctor check[/]{origin}{escape(_interpreter(facts))}\n")
    for line in area_lines(facts, findings):
        mark, style = MARKS[line.status], STYLES[line.status]
        console.print(f"[{style}]{escape(f'[{mark}]')}[/] [bold]{line.title}[/] — {escape(line.summary)}")
        if line.crashed:
            console.print(f"    [red]☠ probe crashed:[/] {escape(line.crashed)}")
    if findings:
        console.print()
    for f in findings:
        style = STYLES[f.severity]
        console.print(
            f"[{style}]{MARKS[f.severity]} {f.severity.value}[/] [bold]{f.id}[/]: {escape(f.message)}"
        )
        for key, value in f.evidence.items():
            console.print(f"    [dim]evidence[/] {escape(key)} = {escape(_evidence_text(value))}")
        if f.inferred:
            console.print("    [dim]note[/] rests on an inference (e.g. GPU model → compute capability)")
        for fix_line in _fix_lines(f, advice):
            console.print(f"    [cyan]fix[/] {escape(fix_line)}")
        if f.verify:
            console.print(f"    [cyan]verify[/] {escape(f.verify)}")
        for url in f.sources[:2]:
            console.print(f"    [dim]see[/] {escape(url)}")
    if settle is not None:
        console.print("\n[bold]Not diagnosed[/]: no finding explains a failure.")
        for asked in settle.lines():
            console.print(escape(asked))
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    hint = f" {advice.hint}" if advice is not None and advice.hint else ""
    console.print(f"\n{errors} error(s), {warnings} warning(s).{escape(hint)}")
    if verbose:
        console.print("\n[bold]Facts[/]")
        for path, value in flatten(facts.to_dict()):
            console.print(f"  {escape(path)} = {escape(_evidence_text(value))}")


def _interpreter(facts: Facts) -> str:
    """' of /path/python (Python 3.11.2, venv)': which interpreter the report is about."""
    py = facts.python
    if not py.executable:
        return ""
    about = ", ".join(p for p in (f"Python {py.version}" if py.version else None, py.env_kind) if p)
    return f" of {py.executable}" + (f" ({about})" if about else "")


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted (path, value) pairs of a nested dict, lists of objects indexed ('nvidia.gpus[0].name')."""
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = []
        for k, v in data.items():
            items += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return items
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return [kv for i, x in enumerate(data) for kv in flatten(x, f"{prefix}[{i}]")]
    return [(prefix, data)]


def render_json(facts: Facts, findings: list[Finding], settle: Unsettled | None = None) -> str:
    """``{schema_version, facts, findings}``, plus ``recognised`` and ``ask_for`` when ``settle`` is given."""
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "facts": facts.to_dict(),
        "findings": [f.to_dict() for f in findings],
    }
    if settle is not None:
        payload |= settle.to_dict()
    return json.dumps(payload, indent=2)


def render_markdown(
    facts: Facts, findings: list[Finding], advice: Advice | None = None, settle: Unsettled | None = None
) -> str:
    """A report fit to paste into a GitHub issue: areas, findings, and the facts folded away."""
    out = [f"## envdoctor check{_interpreter(facts)}", ""]
    out += ["| | area | summary |", "|---|---|---|"]
    for line in area_lines(facts, findings):
        summary = line.summary + (f" (probe crashed: {line.crashed})" if line.crashed else "")
        out.append(f"| {MARKS[line.status]} | {line.title} | {_md_cell(summary)} |")
    out.append("")
    if findings:
        out += ["### Findings", ""]
    for f in findings:
        out.append(f"- **{f.severity.value}** `{f.id}`: {f.message}")
        for key, value in f.evidence.items():
            out.append(f"  - evidence: `{key}` = `{_evidence_text(value)}`")
        out += [
            f"  - fix: `{line}`" if advice and advice.commands.get(f.id) else f"  - fix: {line}"
            for line in _fix_lines(f, advice)
        ]
        if f.verify:
            out.append(f"  - verify: `{f.verify}`")
        if f.sources:
            out.append(f"  - source: {f.sources[0]}")
    if settle is not None:
        out += ["### Not diagnosed", "", "No finding explains a failure. Read from the paste:", ""]
        out += [f"- {_md_cell(line)}" for line in settle.recognised]
        out += ["", f"To settle it, paste {settle.ask_for}."]
    out += ["", "<details><summary>facts (envdoctor check --json)</summary>", "", "```json"]
    out += [facts.to_json(), "```", "", "</details>", ""]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rules_markdown() -> str:
    """The findings table of the docs, generated from the rules themselves."""
    out = ["| id | severity | area | meaning | fix | source |", "|---|---|---|---|---|---|"]
    for r in _rules_by_area():
        src = f"[link]({r.sources[0]})" if r.sources else ""
        cells = [f"`{r.id}`", r.severity.value, AREAS.get(r.area, r.area), r.summary, r.fix, src]
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def _rules_by_area():
    from envdoctor.rules import all_rules

    return sorted(all_rules(), key=lambda r: (list(AREAS).index(r.area) if r.area in AREAS else 99, r.id))


def rules_text() -> str:
    """One block per rule, ids whole at any width or pipe (``fix --only`` needs them exact)."""
    out = []
    for r in _rules_by_area():
        out.append(f"{r.id}  [{r.severity.value}, {AREAS.get(r.area, r.area)}]")
        out.append(f"    {r.summary}")
        out.append(f"    fix: {r.fix}")
    return "\n".join(out) + "\n"


def rules_json() -> str:
    """Every rule as data: id, severity, area, meaning, fix, sources."""
    return json.dumps([_rule_row(r) for r in _rules_by_area()], indent=2)


def _rule_row(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "severity": r.severity.value,
        "area": r.area,
        "summary": r.summary,
        "fix": r.fix,
        "sources": list(r.sources),
    }


def rule_page(rule_id: str, fmt: str) -> str:
    """One rule's whole documentation (``envdoctor rules ID``): its docstring (what it detects, why it
    matters, the fix), its verify command and sources. Raises KeyError for an unknown id."""
    from envdoctor.rules import get_rule

    r = get_rule(rule_id)  # KeyError for an unknown id
    where = f"{r.severity.value}, {AREAS.get(r.area, r.area)}"
    if fmt == "json":
        return json.dumps({**_rule_row(r), "name": r.name, "verify": r.verify, "doc": r.doc}, indent=2) + "\n"
    if fmt == "markdown":
        from envdoctor.rules import DOC_SECTION

        doc = DOC_SECTION.sub(r"\n\g<0>", r.doc).replace("\n\n\n", "\n\n")  # a paragraph per section
        out = [f"### `{r.id}` ({where})", "", f"**{r.name}**", "", doc, ""]
        out += [f"Verify: `{r.verify}`", ""] if r.verify else []
        return "\n".join(out + ["Sources:", *(f"- <{s}>" for s in r.sources)]) + "\n"
    out = [f"{r.id}  [{where}]", f"    {r.name}", ""]
    out += [f"    {line}".rstrip() for line in r.doc.splitlines()]
    out += ["", f"    verify: {r.verify}"] if r.verify else []
    return "\n".join(out + ["", "    sources:", *(f"      {s}" for s in r.sources)]) + "\n"
