"""Error signatures: well-known error messages as data, and the matcher that finds them in a text.

Each ``*.yaml`` file next to this module lists signatures: a regex with named groups, the finding id it
points to (or ``null`` for a message that has no single environment cause), a severity, a confidence,
a message template, the URL of a real issue showing it, and optionally the facts its groups state.
Text is matched with its whitespace collapsed, so a message wrapped over several lines still matches.
Both the paste parser (:mod:`envdoctor.paste`) and the ranked diagnosis (:mod:`envdoctor.explain`)
use this module; it imports neither.
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
from typing import Any, Literal

from envdoctor.facts import is_fact_path
from envdoctor.findings import Severity
from envdoctor.yamlio import Fields, load_rows, row_name

Confidence = Literal["high", "low"]
CONFIDENCES: tuple[Confidence, ...] = ("high", "low")
FIELD_TYPES = ("str", "sm", "sm-list", "cuda-int")
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
    confidence: Confidence
    pattern: re.Pattern[str]
    message: str
    source: str
    example: str
    types: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)  # field -> fact key (see reports.errors)
    sets: dict[str, Any] = field(default_factory=dict)  # fact key -> constant
    anchors: tuple[str, ...] = ()  # literal texts a match must hold one of (lower case), see anchors()
    # The same message is raised by users' own code (a TypeError about arguments): a crash does not
    # make it an error, since the program died of a bug there as often as of its environment.
    user_code: bool = False
    # The message breaks only the build of a CUDA extension (nvcc missing where CUDA_HOME points): in a
    # paste that shows no build it is a warning, since a diagnostic tool probing for nvcc prints it too.
    build_only: bool = False
    # The id when the paste's nvcc is a newer CUDA than torch was built with: what failed was then
    # compiled here by that toolkit, not shipped inside torch (see explain.signature_id).
    toolkit_id: str | None = None
    # The id when the message names a CUDA runtime (the ``cuda`` group, its major) other than the one
    # torch was built with: torch loads its own, so what asked for this one was built for that CUDA.
    foreign_cuda_id: str | None = None
    # The fix for this message where the id's rule gives the fix of that id's usual cause, which
    # does not fit it (ONNX Runtime's provider library: not a loader path to clean up).
    fix: str | None = None
    # Likewise the command that checks it (bitsandbytes' own report, not torchvision's import).
    verify: str | None = None


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
        """The signature's severity, raised to an error when the message is a crash (unless user_code)."""
        return Severity.ERROR if self.crash and not self.signature.user_code else self.signature.severity


@cache
def load_signatures() -> tuple[Signature, ...]:
    """Every signature, in file-name then file order (earlier ones win overlapping matches)."""
    folder = resources.files(__name__)
    out: list[Signature] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            text = entry.read_text(encoding="utf-8")
        except OSError as exc:
            raise SignatureError(f"{entry.name}: cannot load ({exc})") from None
        items = load_rows(entry.name, text, "signatures", SignatureError)
        out += [parse_signature(entry.name, i, item) for i, item in enumerate(items)]
    names = [s.name for s in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SignatureError(f"duplicate signature names: {sorted(dupes)}")
    # High-confidence signatures are tried first so that they win overlaps against generic ones.
    return tuple(sorted(out, key=lambda s: s.confidence != "high"))


def parse_signature(filename: str, i: int, item: Any) -> Signature:
    """Row ``i`` of a signature file as a Signature; SignatureError says ``file: row: field: problem``."""
    where = row_name(filename, i, item)
    if not isinstance(item, dict):
        raise SignatureError(f"{where}: not a mapping")
    fields = Fields(where, SignatureError)
    for key in ("name", "pattern", "severity", "message", "source", "example"):
        fields.string(item, key)
    if not item["source"].startswith("https://"):
        fields.fail("source", "not an https URL")
    fields.choice(item, "confidence", CONFIDENCES)
    try:
        severity = Severity(item["severity"])
    except ValueError as exc:
        raise SignatureError(f"{where}: severity: {exc}") from None
    try:
        pattern = re.compile(item["pattern"], re.IGNORECASE)
    except re.error as exc:
        raise SignatureError(f"{where}: pattern: {exc}") from None
    types = dict(item.get("types") or {})
    bad = {k: v for k, v in types.items() if v not in FIELD_TYPES or k not in pattern.groupindex}
    if bad:
        raise SignatureError(f"{where}: types: {bad} (groups must exist; types are {FIELD_TYPES})")
    facts = dict(item.get("facts") or {})
    if any(k not in pattern.groupindex for k in facts):
        raise SignatureError(f"{where}: facts: names a group the pattern does not have")
    sets = dict(item.get("sets") or {})
    for field_name, keys in (
        ("facts", [k for k in facts.values() if not _stated_fact(k)]),
        ("sets", [k for k in sets if not is_fact_path(k)]),
    ):
        if keys:
            raise SignatureError(
                f"{where}: {field_name}: {', '.join(map(repr, keys))} is not a fact (see envdoctor.facts)"
            )
    user_code, build_only = item.get("user_code", False), item.get("build_only", False)
    if not isinstance(user_code, bool) or not isinstance(build_only, bool):
        raise SignatureError(f"{where}: user_code / build_only: not true or false")
    toolkit_id = item.get("toolkit_id")
    if toolkit_id is not None and not isinstance(toolkit_id, str):
        raise SignatureError(f"{where}: toolkit_id: not a finding id")
    fix, verify = item.get("fix"), item.get("verify")
    if fix is not None and (not isinstance(fix, str) or not fix.strip()):
        raise SignatureError(f"{where}: fix: not a sentence")
    if verify is not None and (not isinstance(verify, str) or not verify.strip()):
        raise SignatureError(f"{where}: verify: not a command")
    foreign_cuda_id = item.get("foreign_cuda_id")
    if foreign_cuda_id is not None and (
        not isinstance(foreign_cuda_id, str) or "cuda" not in pattern.groupindex
    ):
        raise SignatureError(
            f"{where}: foreign_cuda_id: not a finding id, or the pattern has no 'cuda' group"
        )
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
        sets=sets,
        anchors=anchors(pattern),
        user_code=user_code,
        build_only=build_only,
        toolkit_id=toolkit_id,
        foreign_cuda_id=foreign_cuda_id,
        fix=fix,
        verify=verify,
    )


def _stated_fact(key: str) -> bool:
    """A fact key a signature's group may state: a facts path, or one the paste parser files itself
    (the GPU of the message, a package version, torch's CUDA build)."""
    return (
        key in ("gpu.name", "gpu.capability", "torch.build")
        or key.startswith("package.")
        or is_fact_path(key)
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
    crashed: dict[int, bool] = {}  # line -> CRASH found: once per line, however many matches it holds
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
            for i in range(first, last + 1):
                if i not in crashed:
                    crashed[i] = CRASH.search(parts[i]) is not None
            crash = any(crashed[i] for i in range(first, last + 1))
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
