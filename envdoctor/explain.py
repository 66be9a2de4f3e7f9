"""The ranked diagnosis: what error messages say (signatures) merged with what the rules find in facts.

Signatures are data (``envdoctor/signatures/*.yaml``, loaded and matched by :mod:`envdoctor.signatures`,
whose public names this module re-exports): a regex with named groups, the finding id it points to, a
severity, a confidence, a message template and the URL of a real issue showing it.

:func:`rank` merges what the error messages say with what the rules find in the facts: an id that both
support comes first, then strong error signatures, then rule findings, then weak signatures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Severity
from envdoctor.readers import os_family, torch_cuda
from envdoctor.signatures import Match, Signature, SignatureError, load_signatures, match_text
from envdoctor.versions import version_tuple

__all__ = [
    "Diagnosis",
    "Explanation",
    "Match",
    "Signature",
    "SignatureError",
    "Unsettled",
    "diagnose",
    "explain_text",
    "load_signatures",
    "match_text",
    "rank",
    "render_explanation",
    "unsettled",
]

CONFIDENCE_SCORE = {"high": 3.0, "low": 1.0}
FACTS_SCORE = {Severity.ERROR: 2.0, Severity.WARNING: 1.0, Severity.INFO: 0.5}
# Findings that explain "torch sees no GPU" (collect_env's "Is CUDA available: False" next to a listed
# GPU). When a report states that symptom, these rank above findings that do not explain it.
CUDA_UNAVAILABLE_CAUSES = frozenset(
    {
        "driver-too-old",
        "gpu-newer-than-driver",
        "torch-cpu-build",
        "driver-missing",
        "driver-library-mismatch",
        "container-gpu",
        "cuda-visible-devices-empty",
    }
)
SYMPTOM_SCORE = 1.0
# Ids whose cause is an NVIDIA machine running a torch without CUDA. A Mac has no NVIDIA GPU and torch
# ships no CUDA build for macOS, so there "Torch not compiled with CUDA enabled" means the program asked
# for CUDA: its own limit or a device setting, not a build to replace (Apple's GPU is the "mps" device).
NEEDS_NVIDIA = frozenset({"torch-cpu-build"})
NO_CUDA_ON_MACOS = (
    "macOS has no CUDA (no NVIDIA GPU, no CUDA build of torch): the program asked for CUDA; on Apple "
    "silicon run it on the 'mps' device or the CPU, no torch reinstall will help"
)
MACOS_BUILDS = "https://pytorch.org/get-started/locally/"
# Ids that say the GPU lacks a number format, with the compute capability that has it. A message
# pointing to one of them on a paste whose every GPU has that capability is about the program's
# precision settings (a bf16 model under fp16 mixed precision on an A100), not about the GPU.
FORMAT_FLOORS = {"bf16-unsupported": (8, 0), "fp8-unsupported": (8, 9)}
GPU_HAS_FORMAT = (
    "every GPU here (compute capability {caps}) has this number format: the program's precision "
    "settings asked for the failing combination, not the GPU"
)


@dataclass
class Diagnosis:
    """A ranked candidate: the finding, what supports it ("error", "facts") and the score."""

    finding: Finding
    support: tuple[str, ...]
    score: float
    matches: list[Match] = field(default_factory=list)


def rank(facts: Facts, matches: list[Match] | None = None) -> list[Diagnosis]:
    """Rule findings and error signatures merged into one ranked list of candidate ids.

    Scores: an error signature adds its confidence, a rule finding its severity, and a finding that
    explains a symptom the report states (CUDA unavailable with a GPU listed) adds SYMPTOM_SCORE;
    ties go to the symptom's explanation, then to the more severe finding.
    """
    from envdoctor.rules import evaluate

    if matches is None:
        matches = match_text("\n".join(facts.error_lines))
    matches = applicable(facts, matches)
    by_id: dict[str, Diagnosis] = {}
    for f in evaluate(facts):
        d = by_id.get(f.id)
        if d is None:
            by_id[f.id] = Diagnosis(f, ("facts",), FACTS_SCORE[f.severity])
        elif f.severity.rank < d.finding.severity.rank:
            d.finding, d.score = f, FACTS_SCORE[f.severity]
    for m in matches:
        sig, sig_id = m.signature, signature_id(facts, m)
        if sig_id is None:
            continue
        d = by_id.get(sig_id)
        if d is None:
            d = by_id[sig_id] = Diagnosis(_signature_finding(m, sig_id), (), 0.0)
        if "error" not in d.support:
            d.support = ("error", *d.support)
            d.score += CONFIDENCE_SCORE[sig.confidence]
            if "facts" in d.support:
                d.finding.evidence.setdefault("error message", m.excerpt)
        raise_severity(d, m)
        d.matches.append(m)
    _add_derived(facts, by_id)
    for d in by_id.values():
        if "error" not in d.support:
            _soften_stated(facts, d)
            _soften_inferred_build(d)
    if facts.torch.cuda_available is False and facts.nvidia.gpus:
        for rule_id in CUDA_UNAVAILABLE_CAUSES & by_id.keys():
            d = by_id[rule_id]
            d.support, d.score = (*d.support, "symptom"), d.score + SYMPTOM_SCORE
    _mark_inferred(facts, [d.finding for d in by_id.values()])
    return sorted(
        by_id.values(), key=lambda d: (-d.score, "symptom" not in d.support, d.finding.severity.rank)
    )


def signature_id(facts: Facts, m: Match) -> str | None:
    """The id a matched message points to in this report: the signature's ``toolkit_id`` when the
    paste's nvcc is a newer CUDA than torch was built with (torch's own PTX would JIT where torch
    runs; PTX newer than the driver came from what that toolkit compiled here); its
    ``foreign_cuda_id`` when the message names a CUDA runtime of another major than torch's (torch
    loads its own: a package built for that CUDA asked for it); else its ``id``."""
    sig = m.signature
    nvcc, built = facts.cuda.nvcc_version, torch_cuda(facts)
    if sig.toolkit_id and nvcc and built and version_tuple(nvcc)[:2] > version_tuple(built)[:2]:
        return sig.toolkit_id
    asked = m.fields.get("cuda")
    if sig.foreign_cuda_id and asked and built and version_tuple(asked)[:1] != version_tuple(built)[:1]:
        return sig.foreign_cuda_id
    return sig.id


def without_cuda(facts: Facts, matches: list[Match]) -> list[Match]:
    """On a Mac with no NVIDIA GPU in the facts, messages whose id presumes an NVIDIA machine become
    explanations without an id (see NEEDS_NVIDIA)."""
    if facts.nvidia.gpus or os_family(facts) != "macos":
        return matches
    return [
        replace(
            m,
            signature=replace(m.signature, id=None, message=NO_CUDA_ON_MACOS, source=MACOS_BUILDS),
        )
        if m.signature.id in NEEDS_NVIDIA
        else m
        for m in matches
    ]


def within_capability(facts: Facts, matches: list[Match]) -> list[Match]:
    """Messages whose id says the GPU lacks a number format (FORMAT_FLOORS) become explanations
    without an id when every GPU in the facts has a known capability at or above that format's floor."""
    caps = [g.compute_capability for g in facts.nvidia.gpus or ()]
    if not caps or not all(caps):
        return matches
    lowest = min(version_tuple(c)[:2] for c in caps if c)
    said = ", ".join(sorted(set(c for c in caps if c)))
    return [
        replace(
            m,
            signature=replace(
                m.signature, id=None, message=f"{m.signature.message}; {GPU_HAS_FORMAT.format(caps=said)}"
            ),
        )
        if m.signature.id in FORMAT_FLOORS and lowest >= FORMAT_FLOORS[m.signature.id]
        else m
        for m in matches
    ]


# Signs that the paste shows a CUDA extension being compiled: setup.py / pip building a wheel,
# torch.utils.cpp_extension, ninja or nvcc itself running.
BUILDING = re.compile(
    r"setup\.py|cpp_extension|build_ext|[Bb]uilding (?:wheel|extension)|bdist_wheel|ninja|nvcc (?:fatal|error)"
    r"|-gencode|CMake|--no-build-isolation|pip(?:3)? install -e|error: command"
)


def outside_builds(facts: Facts, matches: list[Match]) -> list[Match]:
    """Messages that break only an extension build (a signature's ``build_only``) are warnings in a
    paste that shows no build: nothing failed to compile, a tool merely probed for nvcc. A value that
    is a list of folders (a ':' in it) is wrong whatever runs, and stays as it is."""
    text = "\n".join(facts.error_lines)
    if BUILDING.search(text):
        return matches
    return [
        replace(m, signature=replace(m.signature, severity=Severity.WARNING), crash=False)
        if m.signature.build_only and not any(":" in str(v) for v in m.fields.values())
        else m
        for m in matches
    ]


def applicable(facts: Facts, matches: list[Match]) -> list[Match]:
    """The matches as the facts let them count: CUDA messages on a CPU-only stack, capability
    messages on GPUs that have it, build messages in a paste without a build (each filter above)."""
    return outside_builds(facts, within_capability(facts, without_cuda(facts, matches)))


def raise_severity(d: Diagnosis, m: Match) -> None:
    """An error message proves more than the facts: a finding the facts rated milder takes its severity.

    A rule may rate a state mild because it cannot know it bites (bf16 on a T4 "runs emulated"); the
    message shows it did ("ValueError: Bfloat16 is only supported on GPUs with compute capability of at
    least 8.0"), so the finding becomes that severity, says what the message says, and keeps the rule's
    evidence and fix.
    """
    if m.severity.rank >= d.finding.severity.rank:
        return
    raised = _signature_finding(m, d.finding.id)
    old = d.finding
    d.finding = Finding(
        id=old.id,
        severity=m.severity,
        message=raised.message,
        evidence={**raised.evidence, **old.evidence},
        fix=old.fix or raised.fix,
        actions=old.actions,
        sources=list(dict.fromkeys([*raised.sources, *old.sources])),
        inferred=old.inferred,
        verify=old.verify,
    )


# Evidence keys that are fact paths (others, like "error message", are not facts).
_FACT_ROOTS = ("system.", "python.", "nvidia.", "cuda.", "packages.", "torch.", "docker.", "gpus.")


def _soften_stated(facts: Facts, d: Diagnosis) -> None:
    """A rule finding that rests only on facts a person wrote (prose, a quoted command), with no error
    line agreeing, is a warning that says so: people misremember versions and name GPUs loosely."""
    if not facts.stated or d.finding.severity is Severity.INFO:
        return
    stated: list[str] = []  # the words that stated each fact
    tool = 0  # facts a tool printed
    for key, value in d.finding.evidence.items():
        if value is None or not key.startswith(_FACT_ROOTS):
            continue
        words = next((w for s, w in facts.stated.items() if _covers(s, key)), None)
        if words:
            stated.append(words)
        else:
            tool += 1
    if stated and not tool:
        d.finding.evidence["stated, not tool output"] = " | ".join(dict.fromkeys(stated))
        if d.finding.severity is Severity.ERROR:
            d.finding.severity = Severity.WARNING
            d.score = FACTS_SCORE[Severity.WARNING] + (d.score - FACTS_SCORE[Severity.ERROR])


def _soften_inferred_build(d: Diagnosis) -> None:
    """A rule finding that rests on a torch build inferred from the platform (a version without its
    +cuXXX tag: PyPI's wheel there, see readers.torch_build), with no error line agreeing, is a warning."""
    if "inferred build" in d.finding.evidence and d.finding.severity is Severity.ERROR:
        d.finding.severity = Severity.WARNING
        d.score = FACTS_SCORE[Severity.WARNING] + (d.score - FACTS_SCORE[Severity.ERROR])


def _covers(stated_key: str, evidence_key: str) -> bool:
    if stated_key == "nvidia.gpus":
        return evidence_key.startswith(("nvidia.gpus", "gpus."))
    return evidence_key == stated_key or evidence_key.startswith(stated_key + ".")


def _add_derived(facts: Facts, by_id: dict[str, Diagnosis]) -> None:
    """Findings derived from mined knowledge (API index, wheel listings) for the report's error lines:
    an error message explained by release data counts as a strong signature."""
    from envdoctor.derive import derive

    for derived in derive(facts):
        f = derived.finding
        d = by_id.get(f.id)
        if d is None:
            by_id[f.id] = Diagnosis(f, ("error", "derived"), CONFIDENCE_SCORE["high"])
        elif "derived" not in d.support:
            d.support = (*d.support, "derived")
            d.score += CONFIDENCE_SCORE["high"] if "error" not in d.support else SYMPTOM_SCORE
            d.finding.evidence.setdefault("derived", f.message)


def diagnose(facts: Facts) -> list[Finding]:
    """The findings of a pasted report in diagnosis order (what ``check --from-report`` prints)."""
    return [d.finding for d in rank(facts)]


def _signature_finding(m: Match, finding_id: str) -> Finding:
    """A finding that rests on an error message alone, with the signature's own fix, else the rule's."""
    from envdoctor.rules import get_rule

    sig = m.signature
    message = sig.message.format_map(_Fields(m.fields))
    fix, sources, verify = "", [sig.source], ""
    try:
        r = get_rule(finding_id)
    except KeyError:
        r = None
    if r is not None and not sig.fix:  # the rule's sources stand behind the rule's fix only
        sources = [sig.source, *r.sources]
    if r is not None:
        fix, verify = r.fix, r.verify
    fix, verify = sig.fix or fix, sig.verify or verify
    evidence: dict[str, Any] = {"error message": m.excerpt}
    evidence.update({k: v for k, v in m.fields.items() if not k.endswith("_raw")})
    return Finding(
        id=finding_id,
        severity=m.severity,
        message=message,
        evidence=evidence,
        fix=fix,
        sources=sources,
        verify=verify,
    )


class _Fields(dict):
    """Template fields; a field the message did not carry reads as 'unknown'."""

    def __missing__(self, key: str) -> str:
        return "unknown"

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key) if key in self else self.__missing__(key)
        return " ".join(value) if isinstance(value, list) else value


def _mark_inferred(facts: Facts, findings: list[Finding]) -> None:
    """Mark findings whose evidence touches a compute capability that was inferred from a GPU name."""
    inferred = [g for g in facts.nvidia.gpus or [] if g.capability_inferred]
    if not inferred:
        return
    for f in findings:
        touched = " ".join(f"{k} {v}" for k, v in f.evidence.items()).lower()
        if not f.inferred and ("capabilit" in touched or "gpus" in touched or "arch" in touched):
            f.inferred = True
            names = ", ".join(f"{g.name} -> {g.compute_capability}" for g in inferred)
            f.evidence.setdefault("inferred", f"compute capability from the GPU name ({names})")


COLLECT_ENV = "python -m torch.utils.collect_env"


@dataclass
class Unsettled:
    """A paste that left the cause undiagnosed: what was read from it and the one report that would
    settle it. ``explain`` and ``check --from-report`` both say it, in every format."""

    recognised: list[str]
    ask_for: str

    def to_dict(self) -> dict[str, Any]:
        return {"recognised": self.recognised, "ask_for": self.ask_for}

    def lines(self) -> list[str]:
        """Plain text: one line per fact or error line read, then the request."""
        return [f"  read: {line}" for line in self.recognised] + [f"To settle it, paste {self.ask_for}."]


def unsettled(facts: Facts, findings: list[Finding]) -> Unsettled | None:
    """What was read and what to ask for while no finding is an error (nothing explains a failure
    yet); None once one does."""
    if any(f.severity is Severity.ERROR for f in findings):
        return None
    return Unsettled(_recognised(facts), _ask_for(facts, findings))


@dataclass
class Explanation:
    """What ``envdoctor explain`` prints: ranked candidates and recognised messages without an id;
    without an error candidate, what was recognised and the one report that would settle it."""

    candidates: list[Diagnosis]
    notes: list[Match]
    settle: Unsettled | None = None

    @property
    def has_errors(self) -> bool:
        """An error candidate, or a recognised error message without a diagnosis (a crash is one)."""
        return any(d.finding.severity is Severity.ERROR for d in self.candidates) or any(
            m.severity is Severity.ERROR for m in self.notes
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [
                {
                    "rank": i,
                    "id": d.finding.id,
                    "support": list(d.support),
                    "score": d.score,
                    "fields": {
                        k: v for m in d.matches for k, v in m.fields.items() if not k.endswith("_raw")
                    },
                    "finding": d.finding.to_dict(),
                    "summary": _summary(d.finding.id),
                }
                for i, d in enumerate(self.candidates, 1)
            ],
            "recognised_without_diagnosis": [
                {
                    "signature": m.signature.name,
                    "excerpt": m.excerpt,
                    "meaning": m.signature.message,
                    "severity": m.severity.value,
                }
                for m in self.notes
            ],
            "recognised": self.settle.recognised if self.settle else [],
            "ask_for": self.settle.ask_for if self.settle else None,
        }


def explain_text(text: str) -> Explanation:
    """Diagnose an error message (optionally with an environment report around it)."""
    from envdoctor.paste import ReportError, facts_from_report

    try:
        facts = facts_from_report(text)
    except ReportError:
        facts = Facts(origin="report")
    matches = applicable(facts, match_text(text))
    candidates = rank(facts, matches)
    notes = [m for m in matches if m.signature.id is None]
    return Explanation(candidates, notes, unsettled(facts, [d.finding for d in candidates]))


def _recognised(facts: Facts) -> list[str]:
    """The facts and error lines read from a text that led to no diagnosis (stated ones say so)."""
    said = facts.stated
    shown = {
        "system.os": facts.system.os,
        "torch.version": facts.torch.version,
        "torch.cuda": facts.torch.cuda,
        "python.version": facts.python.version,
        "nvidia.driver_version": facts.nvidia.driver_version,
        "nvidia.gpus": ", ".join(g.name for g in facts.nvidia.gpus or []) or None,
        "cuda.nvcc_version": facts.cuda.nvcc_version,
    }
    out = [f"{k}: {v}" + (" (stated in prose)" if k in said else "") for k, v in shown.items() if v]
    for name, version in sorted((facts.packages.versions or {}).items()):
        key = f"packages.versions.{name}"
        if name != "torch":
            out.append(f"{key}: {version}" + (" (stated in prose)" if key in said else ""))
    return out + [f"error line: {line}" for line in facts.error_lines]


PIP_LIST = "python -m pip list"


def _ask_for(facts: Facts, findings: list[Finding]) -> str:
    """The one report that would settle it: every installed release when the leading guess is two
    packages made for different releases of each other, the full environment when torch or the GPU is
    unknown, else the complete error output."""
    if findings and findings[0].id == "requirement-conflict":
        return (
            f"the output of `{PIP_LIST}` (the installed release of every package, both sides of the mismatch)"
        )
    if not facts.torch.version or "torch.version" in facts.stated:
        return f"the output of `{COLLECT_ENV}` (torch build, GPUs, driver, packages)"
    if not facts.nvidia.gpus or "nvidia.gpus" in facts.stated:
        return "the output of `nvidia-smi` (driver and GPUs)"
    return "the complete error output, from the first line of the traceback to the last"


def _summary(rule_id: str) -> str:
    from envdoctor.rules import get_rule

    try:
        return get_rule(rule_id).summary
    except KeyError:
        return ""


def render_explanation(ex: Explanation) -> str:
    """Plain text: one block per candidate, best first, then messages recognised without a diagnosis."""
    out: list[str] = []
    for i, d in enumerate(ex.candidates, 1):
        f = d.finding
        fields = {k: v for m in d.matches for k, v in m.fields.items() if not k.endswith("_raw")}
        shown = " ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in fields.items())
        out.append(
            f"{i}. {f.id} ({f.severity.value}; from {' + '.join(d.support)})"
            + (f"  {shown}" if shown else "")
        )
        out.append(f"   {f.message}")
        if _summary(f.id) and not any(m.signature.fix for m in d.matches):
            # a message with its own fix is not the rule's usual cause: the rule's "why" is not its
            out.append(f"   why: {_summary(f.id)}")
        if f.fix:
            out.append(f"   fix: {f.fix}")
        if f.verify:
            out.append(f"   verify: {f.verify}")
        if f.inferred:
            out.append("   note: rests on an inference (GPU model -> compute capability)")
        if f.sources:
            out.append(f"   see: {f.sources[0]}")
    for m in ex.notes:
        out.append(f"- {m.severity.value}, recognised, no single environment cause: {m.excerpt}")
        out.append(f"   {m.signature.message} (see {m.signature.source})")
    if ex.settle is not None:
        out.append(
            "No known error message or environment problem recognised." if not out else "No error diagnosed."
        )
        out += ex.settle.lines()
    return "\n".join(out) + "\n"
