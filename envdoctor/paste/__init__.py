"""Facts from what users paste: environment reports and the error messages quoted around them.

Recognised, alone or mixed in one paste: PyTorch ``collect_env`` (old and new layouts), vLLM
``collect-env``, ``transformers env`` / ``accelerate env``, ``nvidia-smi`` (table, ``-q``, ``-L``),
``nvcc --version``, ``pip list`` / ``pip freeze`` / ``conda list``, detectron2 and mmcv environment
tables, ``python -m xformers.info``, SGLang's ``check_env``, Colossal-AI's ``colossalai check -i``,
MinkowskiEngine's and stable-baselines3's diagnostics, and the error messages of ``envdoctor/signatures``. What the paste does not state stays ``None``; a GPU's compute capability
inferred from its name is marked ``capability_inferred``.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from envdoctor.errors import EnvdoctorError
from envdoctor.facts import Facts
from envdoctor.paste import (
    apps,
    bnb_report,
    collect_env,
    colossalai,
    detectron2,
    diagnostics,
    hf_env,
    lightning,
    nvidia_smi,
    packages,
    prose,
    repl,
    sglang_env,
    toolchain,
    xformers_info,
)
from envdoctor.paste.builder import STATED, Builder
from envdoctor.redact import strip_controls

MAX_BYTES = 5 * 1024 * 1024
MAX_INDENT = 64  # a deeper indent is cut to this: no table a parser reads is indented further
MAX_LINE = 1000  # longer lines are cut: no report line a parser reads is this long, a minified blob is
MAX_ERROR_LINES = 60
# The report parsers read the first and last halves of this many lines: a report is a few hundred
# lines (a pip list a few thousand), and a longer paste is a log around it. Error messages are still
# searched in every line.
MAX_REPORT_LINES = 8000
# prose comes last: it reads what people wrote, and never extends a GPU list a tool printed.
PARSERS = (
    collect_env,
    hf_env,
    lightning,
    diagnostics,
    colossalai,
    apps,
    detectron2,
    xformers_info,
    bnb_report,
    sglang_env,
    nvidia_smi,
    toolchain,
    packages,
    repl,
    prose,
)

_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_HTML_ENTITY = re.compile(r"&(?:gt|lt|amp|quot|#39|#x27|nbsp);")
# A two-cell markdown table row ("| PyTorch version | 2.1.0+cu121 |"); nvidia-smi rows have three cells.
# Key and value end on a non-space (linear in a cell padded with thousands of spaces).
_TABLE_ROW = re.compile(
    r"^\s*\|\s*(?P<key>[A-Za-z`*](?:[^|]*[^|\s])?)\s*\|\s*(?P<value>(?:[^|]*[^|\s])?)\s*\|\s*$"
)
# ComfyUI's log stamps every write, often several to a line ("** Python version:<stamp> -  <stamp> - 3.10").
_LOG_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)? - ")
# One entry of a pretty-printed Python dict, the form OpenCompass (and MMEngine's collect_env through
# pprint) pastes its environment in: " 'PyTorch': '2.5.1+cu124'," or "{'CUDA available': True,". The
# value is one literal; the continuation lines of a long string value are a quoted string alone
# ("                              '  - CUDA Runtime 12.1\\n'"). Keys and values end on a non-quote.
_DICT_ENTRY = re.compile(
    r"^\s*(?:\{\s*)?'(?P<key>[A-Za-z][^'\n]{0,60})'\s*:\s*"
    r"(?:'(?P<text>[^'\n]*)'|(?P<literal>True|False|None|-?\d[\d.]*))\s*(?:[,}]\s*)?$"
)
_DICT_STRING = re.compile(r"^(?P<indent>\s*)'(?P<text>[^'\n]*?)(?:\\n)?'\s*(?:[,}]\s*)?$")
# One way to split every run of spaces: "\s*\|?\s*" would try each split of a long indent (quadratic).
_TABLE_RULE = re.compile(r"^\s*(?:\|\s*)?:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
# A traceback frame inside an installed package: it names the package that made the failing call.
_PACKAGE_FRAME = re.compile(r'^\s*File "[^"]*[/\\](?:site|dist)-packages[/\\]')
# A frame printed as a source location the ``warnings`` way (and test runners'):
# "transformers/integrations/fp8.py:45:", a path with a folder, so a bare "setup.py:3:" is not one.
SOURCE_LOCATION = re.compile(r"(?m)^\s*(?P<package>[A-Za-z_]\w*)[/\\](?:[\w.\-]+[/\\])*[\w.\-]+\.py:\d+:")
_ERRORISH = re.compile(
    r"^\s*(?:\w+\.)*\w*(?:Error|Exception|Warning)\b.*:|CUDA error:|NCCL WARN|\bnccl\w*Error\b|"
    r"^\s*(?:docker: )?Error response from daemon|^\W*ERROR: |"
    # messages that envdoctor.derive explains from mined knowledge, quoted without their exception name
    r"has no attribute '|cannot import name '|No module named '|was removed in the NumPy|No matching distribution",
)
# Literal texts one of which every _ERRORISH match holds: a line without any is skipped unsearched
# (str.find over a 5 MB paste costs a fraction of the regex's alternation tried at every position).
_ERRORISH_WORDS = (
    "Error", "Exception", "Warning", "error:", "WARN", "ERROR", "has no attribute '", "cannot import name '",
    "No module named '", "was removed in the NumPy", "No matching distribution",
)  # fmt: skip


class ReportError(EnvdoctorError, ValueError):
    """A report that cannot be read: the message is one line naming the input and the problem."""


def read_report_text(path: str) -> str:
    """The text of a report file, or of stdin for ``-``; binary, huge or unreadable input is refused."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            if sys.stdin is None:  # started with stdin closed (`<&-`)
                raise ReportError("stdin: closed, nothing to read (pipe the report in, or name a file)")
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ReportError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{name}: is a directory, not a report") from None
    except OSError as exc:
        raise ReportError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise ReportError(
            f"{name}: larger than {MAX_BYTES // (1024 * 1024)} MB; paste the report, not a log dump"
        )
    return decode_report(data, name)


def decode_report(data: bytes, name: str = "report") -> str:
    """Bytes to text: UTF-8, or UTF-16 with a BOM (PowerShell's ``>`` writes that); binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        if b"\x00" in data[:65536]:
            raise ReportError(f"{name}: binary data, not a text report")
        text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if text and bad > max(16, len(text) // 20):
        raise ReportError(f"{name}: not UTF-8 text ({bad} undecodable bytes)")
    return text


def report_lines(text: str) -> list[str]:
    """Lines with terminal control sequences, markdown quote markers and code fences removed.

    A full-width colon (``GPU 0： Tesla P100``, typed with a CJK input method) reads as ``:``; HTML
    entities (``&gt;``) are decoded, tabs and non-breaking spaces become spaces, and a two-cell markdown
    table row (``| PyTorch version | 2.1.0 |``) reads as ``PyTorch version: 2.1.0``; ComfyUI's log
    timestamps (``2025-02-15T18:39:38.433370 - ``) are removed.
    """
    if _HTML_ENTITY.search(text):  # a paste copied from rendered HTML: "&gt; PyTorch version: ..."
        text = html.unescape(text)
    lines = []
    # splitlines(), as the signature matcher splits: a form feed or U+2028 ends a line in both.
    for raw in text.splitlines():
        line = _QUOTE.sub("", strip_controls(raw[:MAX_LINE].expandtabs(4)[:MAX_LINE])).rstrip()
        body = line.lstrip(" ")
        if len(line) - len(body) > MAX_INDENT:  # every parser's `^\s*` would walk it again
            line = " " * MAX_INDENT + body
        line = line.replace("\uff1a", ": ").replace("\u00a0", " ").replace("\u3000", " ")
        if " - " in line:
            line = _LOG_STAMP.sub("", line)
        if line.lstrip().startswith("```") or _TABLE_RULE.match(line):
            continue
        row = _TABLE_ROW.match(line)
        if row and row.group("value"):
            line = f"{row.group('key')}: {row.group('value')}"
        elif "'" in line:
            line = _dict_line(line)
        lines.append(line)
    return lines


def _dict_line(line: str) -> str:
    """A pretty-printed dict entry as ``key: value`` (the string's ``\\n`` dropped), a continuation
    string as its text; any other line unchanged."""
    entry = _DICT_ENTRY.match(line)
    if entry:
        value = entry.group("literal") or (entry.group("text") or "").replace("\\n", " ").strip()
        return f"{entry.group('key')}: {value}"
    string = _DICT_STRING.match(line)
    if string and string.group("text").strip():
        return string.group("indent") + string.group("text").replace("\\n", " ").rstrip()
    return line


def _package_frame(line: str) -> bool:
    """A traceback frame in an installed package: ``File ".../site-packages/..."``, or such a frame
    whose ``File "`` head a paste cut off (``python3.10/site-packages/x/trainer.py", line 1460, in f``),
    or a source location printed the ``warnings`` way (``transformers/integrations/fp8.py:45: ...``)."""
    if _PACKAGE_FRAME.match(line) or SOURCE_LOCATION.match(line):
        return True
    at = line.find('", line ')
    if at < 0:
        return False
    path = line[:at].strip()
    return '"' not in path and " " not in path and ("site-packages" in path or "dist-packages" in path)


def _errorish(line: str) -> bool:
    """Whether a line reads as an error or warning message (see _ERRORISH)."""
    return any(word in line for word in _ERRORISH_WORDS) and _ERRORISH.search(line) is not None


def facts_from_report(text: str) -> Facts:
    """Partial facts (``origin = "report"``) from a pasted report; ReportError if nothing is recognised."""
    from envdoctor.signatures import match_text

    if len(text) > MAX_BYTES:
        raise ReportError(f"report larger than {MAX_BYTES // (1024 * 1024)} MB")
    lines = report_lines(text)
    b = Builder()
    half = MAX_REPORT_LINES // 2
    parsed = lines if len(lines) <= MAX_REPORT_LINES else lines[:half] + lines[-half:]
    for parser in PARSERS:
        parser.parse(parsed, b)
    matches = match_text("\n".join(lines))
    for m in matches:
        _apply_signature_facts(m.signature.facts, m.signature.sets, m.fields, b)
    error_idx: set[int] = set()
    for m in matches:
        error_idx.update(range(m.first_line, m.last_line + 1))
    error_idx.update(i for i, line in enumerate(lines) if _errorish(line) or _package_frame(line))
    errors = [lines[i].strip() for i in sorted(error_idx) if lines[i].strip()]
    b.warnings.extend(e for e in errors if "UserWarning" in e)
    if b.empty() and not errors:
        raise ReportError("no environment report or known error message recognised in the input")
    facts = b.build()
    facts.error_lines = errors[:MAX_ERROR_LINES]
    _infer_capabilities(facts)
    return facts


def _apply_signature_facts(facts_map: dict, sets: dict, fields: dict, b: Builder) -> None:
    """Facts an error message states (the GPU and its sm, the NumPy version, an NVML error...)."""
    gpu_name = fields.get(next((k for k, v in facts_map.items() if v == "gpu.name"), ""))
    gpu_cap = fields.get(next((k for k, v in facts_map.items() if v == "gpu.capability"), ""))
    if gpu_name or gpu_cap:
        b.gpu(None, gpu_name, capability=gpu_cap)
    for field_name, key in facts_map.items():
        value = fields.get(field_name)
        if value is None or key.startswith("gpu."):
            continue
        if key.startswith("package."):
            b.package(key.split(".", 1)[1], value, STATED)
        elif key == "torch.build":
            b.torch_build(value, STATED)
        else:
            b.put(key, value, STATED)
    for key, value in sets.items():
        b.put(key, value, STATED)


def _infer_capabilities(facts: Facts) -> None:
    """Compute capability from the GPU name (knowledge table) where the paste does not state it."""
    from envdoctor.knowledge.cuda import gpu_capability

    for gpu in facts.nvidia.gpus or []:
        if gpu.compute_capability is None and not gpu.name.endswith("..."):
            cap = gpu_capability(gpu.name)
            if cap:
                gpu.compute_capability, gpu.capability_inferred = cap, True
