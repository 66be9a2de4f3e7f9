"""Error signatures: well-known error messages mapped to finding ids, and the ranked diagnosis.

Signatures are data (``envdoctor/signatures/*.yaml``): a regex with named groups, the finding id it
points to (or ``null`` for a message that has no single environment cause), a severity, a confidence,
a message template and the URL of a real issue showing it. Text is matched with its whitespace
collapsed, so a message wrapped over several lines still matches.

:func:`rank` merges what the error messages say with what the rules find in the facts: an id that both
support comes first, then strong error signatures, then rule findings, then weak signatures.
"""

from __future__ import annotations

import bisect
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from envdoctor.facts import Facts
from envdoctor.findings import Finding, Severity
from envdoctor.yamlio import load_yaml

CONFIDENCE_SCORE = {"high": 3.0, "low": 1.0}
FACTS_SCORE = {Severity.ERROR: 2.0, Severity.WARNING: 1.0, Severity.INFO: 0.5}
FIELD_TYPES = ("str", "sm", "sm-list", "cuda-int")
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
# A line that shows a program died rather than warned: the exception it raised, a fatal signal, a
# failed NCCL or CUDA call. A message on such a line is an error whatever its signature's usual severity.
CRASH = re.compile(
    r"\b[A-Z]\w*(?:Error|Exception)(?::|\s*$)|Traceback \(most recent call last\)|Segmentation fault|"
    r"core dumped|\bAborted\b|terminate called|\bNCCL (?:error|Error \d+)\b|\bCUDA error:|\bBus error\b"
)
# Characters on each side of an anchor that a signature's pattern is tried on (see _search): error
# messages are a few hundred characters, so a match never needs more.
ANCHOR_WINDOW = 1000
ANCHOR_KEEP = 64  # occurrences of one anchor searched at most (the first and the last halves)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class SignatureError(ValueError):
    """A shipped signature file is malformed: the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class Signature:
    name: str
    id: str | None
    severity: Severity
    confidence: str
    pattern: re.Pattern[str]
    message: str
    source: str
    example: str
    types: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)  # field -> fact key (see reports.errors)
    sets: dict[str, Any] = field(default_factory=dict)  # fact key -> constant
    anchors: tuple[str, ...] = ()  # literal texts a match must hold one of (lower case), see anchors()


@dataclass
class Match:
    """One signature found in a text: its converted fields and the original lines it spans."""

    signature: Signature
    fields: dict[str, Any]
    first_line: int
    last_line: int
    excerpt: str  # the matched text, whitespace collapsed
    crash: bool = False  # the lines it spans show a crash (see CRASH), not a warning

    @property
    def severity(self) -> Severity:
        """The signature's severity, raised to an error when the message is a crash."""
        return Severity.ERROR if self.crash else self.signature.severity


@dataclass
class Diagnosis:
    """A ranked candidate: the finding, what supports it ("error", "facts") and the score."""

    finding: Finding
    support: tuple[str, ...]
    score: float
    matches: list[Match] = field(default_factory=list)


@cache
def load_signatures() -> tuple[Signature, ...]:
    """Every signature, in file-name then file order (earlier ones win overlapping matches)."""
    import yaml

    folder = resources.files("envdoctor").joinpath("signatures")
    out: list[Signature] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            data = load_yaml(entry.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SignatureError(f"{entry.name}: cannot load ({exc})") from None
        items = data.get("signatures") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise SignatureError(f"{entry.name}: expected a mapping with a 'signatures' list")
        out += [_signature(entry.name, i, item) for i, item in enumerate(items)]
    names = [s.name for s in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SignatureError(f"duplicate signature names: {sorted(dupes)}")
    # High-confidence signatures are tried first so that they win overlaps against generic ones.
    return tuple(sorted(out, key=lambda s: s.confidence != "high"))


def _signature(filename: str, i: int, item: Any) -> Signature:
    where = f"{filename}: entry {i}"
    if not isinstance(item, dict):
        raise SignatureError(f"{where}: not a mapping")
    where = f"{filename}: {item.get('name', f'entry {i}')}"
    for key in ("name", "pattern", "severity", "confidence", "message", "source", "example"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise SignatureError(f"{where}: missing {key}")
    if not item["source"].startswith("https://"):
        raise SignatureError(f"{where}: source must be an https URL")
    if item["confidence"] not in CONFIDENCE_SCORE:
        raise SignatureError(f"{where}: confidence must be one of {sorted(CONFIDENCE_SCORE)}")
    try:
        severity = Severity(item["severity"])
        pattern = re.compile(item["pattern"], re.IGNORECASE)
    except (ValueError, re.error) as exc:
        raise SignatureError(f"{where}: {exc}") from None
    types = dict(item.get("types") or {})
    bad = {k: v for k, v in types.items() if v not in FIELD_TYPES or k not in pattern.groupindex}
    if bad:
        raise SignatureError(f"{where}: bad types {bad} (groups must exist; types are {FIELD_TYPES})")
    facts = dict(item.get("facts") or {})
    if any(k not in pattern.groupindex for k in facts):
        raise SignatureError(f"{where}: facts name a group the pattern does not have")
    return Signature(
        name=item["name"],
        id=item.get("id"),
        severity=severity,
        confidence=item["confidence"],
        pattern=pattern,
        message=item["message"],
        source=item["source"],
        example=item["example"],
        types=types,
        facts=facts,
        sets=dict(item.get("sets") or {}),
        anchors=anchors(pattern),
    )


def _convert(kind: str, raw: str) -> Any:
    """Field conversions: 'sm' 120 -> '12.0', 'sm-list' 'sm_50 sm_60' -> [...], 'cuda-int' 11040 -> '11.4'."""
    if kind == "sm":
        return f"{raw[:-1]}.{raw[-1]}"
    if kind == "sm-list":
        return re.findall(r"(?:sm|compute)_\d+a?", raw)
    if kind == "cuda-int":
        n = int(raw)
        return f"{n // 1000}.{(n % 1000) // 10}"
    return raw.strip()


def match_text(text: str) -> list[Match]:
    """Every signature found in ``text``; a match overlapping an earlier (stronger) one is dropped."""
    lines = text.splitlines()
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for line in lines:
        collapsed = " ".join(line.split())
        starts.append(pos)
        parts.append(collapsed)
        pos += len(collapsed) + 1
    joined = " ".join(parts)
    lowered = joined.translate(_ASCII_LOWER)  # same length as joined: positions carry over
    taken_starts: list[int] = []  # accepted spans, sorted and disjoint: starts and ends
    taken_ends: list[int] = []
    matches: list[Match] = []
    for sig in load_signatures():
        for m in _search(sig, joined, lowered):
            span = (m.start(), m.end())
            at = bisect.bisect_right(taken_starts, span[0])
            if (at and taken_ends[at - 1] > span[0]) or (
                at < len(taken_starts) and taken_starts[at] < span[1]
            ):
                continue
            taken_starts.insert(at, span[0])
            taken_ends.insert(at, span[1])
            fields: dict[str, Any] = {}
            for name, raw in m.groupdict().items():
                if raw is not None:
                    fields[name] = _convert(sig.types.get(name, "str"), raw)
                    if sig.types.get(name) == "sm":
                        fields[f"{name}_raw"] = raw
            first = bisect.bisect_right(starts, span[0]) - 1
            last = bisect.bisect_right(starts, max(span[0], span[1] - 1)) - 1
            first, last = max(first, 0), max(last, 0)
            crash = any(CRASH.search(line) for line in parts[first : last + 1])
            matches.append(Match(sig, fields, first, last, m.group(0), crash))
    return sorted(matches, key=lambda x: x.first_line)


def _search(sig: Signature, text: str, lowered: str) -> Iterator[re.Match[str]]:
    """The pattern's matches, searched only near its anchors: linear in the text for any input.

    A pattern is tried only within ANCHOR_WINDOW characters of an occurrence of one of its anchors
    (windows that touch are merged), so text without an anchor costs one substring search per
    anchor, and no pattern ever runs over megabytes of text that cannot hold its message.
    """
    if not sig.anchors:
        yield from sig.pattern.finditer(text)
        return
    spans = [
        (max(at - ANCHOR_WINDOW, 0), at + len(anchor) + ANCHOR_WINDOW)
        for anchor in sig.anchors
        for at in _occurrences(lowered, anchor)
    ]
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        yield from sig.pattern.finditer(text, start, min(end, len(text)))


def _occurrences(text: str, anchor: str) -> list[int]:
    """Where ``anchor`` occurs: all of it, or the first and last ANCHOR_KEEP/2 of a message repeated
    more often (a log that repeats one warning 100 000 times says nothing new after the first ones,
    and the error that ended the run is among the last)."""
    found: list[int] = []
    at = text.find(anchor)
    while at != -1 and len(found) < ANCHOR_KEEP // 2:
        found.append(at)
        at = text.find(anchor, at + 1)
    if at == -1:
        return found
    tail: list[int] = []
    at = text.rfind(anchor)
    while at > found[-1] and len(tail) < ANCHOR_KEEP // 2:
        tail.append(at)
        at = text.rfind(anchor, 0, at + len(anchor) - 1)
    return found + tail[::-1]


def anchors(pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Lower-case literal texts of which every match of ``pattern`` holds at least one (empty if none).

    Read from the parsed pattern: the longest run of plain characters that every match must contain,
    or one such run per alternative of a top-level ``A|B``. Empty when there is none of 4 or more.
    """
    try:
        parser = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")
        constants = importlib.import_module(
            "re._constants" if sys.version_info >= (3, 11) else "sre_constants"
        )
        items = parser.parse(pattern.pattern, pattern.flags)
    except (ImportError, AttributeError, re.error):
        return ()
    literal, branch, group = constants.LITERAL, constants.BRANCH, constants.SUBPATTERN

    def required(seq: Any) -> list[str]:
        best: list[str] = []
        run: list[str] = []
        candidates: list[list[str]] = []
        for op, av in [*seq, (None, None)]:
            if op is literal:
                run.append(chr(av))
                continue
            if run:
                candidates.append(["".join(run)])
                run = []
            if op is branch:
                alternatives = [required(alt) for alt in av[1]]
                if all(alternatives):
                    candidates.append([a for alt in alternatives for a in alt])
            elif op is group:
                candidates.append(required(av[-1]))
        for found in candidates:
            if found and (not best or min(map(len, found)) > min(map(len, best))):
                best = found
        return best

    found = required(items)
    if not found or min(map(len, found)) < 4:
        return ()
    return tuple(sorted({a.lower() for a in found}))


def rank(facts: Facts, matches: list[Match] | None = None) -> list[Diagnosis]:
    """Rule findings and error signatures merged into one ranked list of candidate ids.

    Scores: an error signature adds its confidence, a rule finding its severity, and a finding that
    explains a symptom the report states (CUDA unavailable with a GPU listed) adds SYMPTOM_SCORE;
    ties go to the symptom's explanation, then to the more severe finding.
    """
    from envdoctor.rules import evaluate

    if matches is None:
        matches = match_text("\n".join(facts.error_lines))
    by_id: dict[str, Diagnosis] = {}
    for f in evaluate(facts):
        d = by_id.get(f.id)
        if d is None:
            by_id[f.id] = Diagnosis(f, ("facts",), FACTS_SCORE[f.severity])
        elif f.severity.rank < d.finding.severity.rank:
            d.finding, d.score = f, FACTS_SCORE[f.severity]
    for m in matches:
        sig = m.signature
        if sig.id is None:
            continue
        d = by_id.get(sig.id)
        if d is None:
            d = by_id[sig.id] = Diagnosis(_signature_finding(m), (), 0.0)
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
    if facts.torch.cuda_available is False and facts.nvidia.gpus:
        for rule_id in CUDA_UNAVAILABLE_CAUSES & by_id.keys():
            d = by_id[rule_id]
            d.support, d.score = (*d.support, "symptom"), d.score + SYMPTOM_SCORE
    _mark_inferred(facts, [d.finding for d in by_id.values()])
    return sorted(
        by_id.values(), key=lambda d: (-d.score, "symptom" not in d.support, d.finding.severity.rank)
    )


def raise_severity(d: Diagnosis, m: Match) -> None:
    """An error message proves more than the facts: a finding the facts rated milder takes its severity.

    A rule may rate a state mild because it cannot know it bites (bf16 on a T4 "runs emulated"); the
    message shows it did ("ValueError: Bfloat16 is only supported on GPUs with compute capability of at
    least 8.0"), so the finding becomes that severity, says what the message says, and keeps the rule's
    evidence and fix.
    """
    if m.severity.rank >= d.finding.severity.rank:
        return
    raised = _signature_finding(m)
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
    stated, tool = [], []
    for key, value in d.finding.evidence.items():
        if value is None or not key.startswith(_FACT_ROOTS):
            continue
        words = next((w for s, w in facts.stated.items() if _covers(s, key)), None)
        (stated if words else tool).append(words)
    if stated and not tool:
        d.finding.evidence["stated, not tool output"] = " | ".join(dict.fromkeys(stated))
        if d.finding.severity is Severity.ERROR:
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


def _signature_finding(m: Match) -> Finding:
    """A finding that rests on an error message alone, with the rule's registered fix when it has one."""
    from envdoctor.rules import get_rule

    sig = m.signature
    assert sig.id is not None
    message = sig.message.format_map(_Fields(m.fields))
    fix, sources, verify = "", [sig.source], ""
    try:
        r = get_rule(sig.id)
    except KeyError:
        r = None
    if r is not None:
        fix, sources, verify = r.fix, [sig.source, *r.sources], r.verify
    evidence: dict[str, Any] = {"error message": m.excerpt}
    evidence.update({k: v for k, v in m.fields.items() if not k.endswith("_raw")})
    return Finding(
        id=sig.id,
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
class Explanation:
    """What ``envdoctor explain`` prints: ranked candidates and recognised messages without an id;
    without a candidate, what was recognised and the one report that would settle it."""

    candidates: list[Diagnosis]
    notes: list[Match]
    recognised: list[str] = field(default_factory=list)
    ask: str | None = None

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
            "recognised": self.recognised,
            "ask_for": self.ask,
        }


def explain_text(text: str) -> Explanation:
    """Diagnose an error message (optionally with an environment report around it)."""
    from envdoctor.reports import ReportError, facts_from_report

    try:
        facts = facts_from_report(text)
    except ReportError:
        facts = Facts(origin="report")
    matches = match_text(text)
    candidates = rank(facts, matches)
    ex = Explanation(candidates, [m for m in matches if m.signature.id is None])
    if not candidates:
        ex.recognised, ex.ask = _recognised(facts), _ask_for(facts)
    return ex


def _recognised(facts: Facts) -> list[str]:
    """The facts and error lines read from a text that led to no diagnosis (stated ones say so)."""
    said = facts.stated
    shown = {
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


def _ask_for(facts: Facts) -> str:
    """The one report that would settle it: the full environment when torch or the GPU is unknown,
    else the complete error output."""
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
        if _summary(f.id):
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
    if not out:
        out.append("No known error message or environment problem recognised.")
        out += [f"  read: {line}" for line in ex.recognised]
        if ex.ask:
            out.append(f"To settle it, paste {ex.ask}.")
    return "\n".join(out) + "\n"
