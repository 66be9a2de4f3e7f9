"""What a quoted Python session or one-liner printed about torch.

Reports often hold ``>>> torch.__version__`` / ``'2.1.0+cu121'`` or
``python -c "import torch; print(torch.__version__, torch.cuda.is_available())"`` followed by
``1.8.1+cu102 False``. The expressions are read from the command line in order and paired with the
whitespace-separated values on the next non-empty line (one expression: the whole line).
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import STATED, Builder
from envdoctor.paste.text import short_version, truth, version_in

_EXPR = re.compile(
    r"torch\.__version__|torch\.version\.cuda|torch\.version\.hip|torch\.cuda\.is_available\(\)"
)
_PROMPT = re.compile(r"^\s*(?:>>>|\.\.\.|In \[\d+\]:)\s*")


def parse(lines: list[str], b: Builder) -> None:
    for i, line in enumerate(lines):
        exprs = _EXPR.findall(line)
        if not exprs or i + 1 >= len(lines):
            continue
        output = next((x for x in lines[i + 1 : i + 3] if x.strip()), "")
        if _PROMPT.match(output) or _EXPR.search(output):
            continue  # the next line is another command, not this one's output
        values = [output.strip()] if len(exprs) == 1 else output.replace(",", " ").split()
        if len(values) != len(exprs):
            continue
        for expr, raw in zip(exprs, values, strict=True):
            _record(expr, raw.strip().strip("'\"()"), b)


def _record(expr: str, value: str, b: Builder) -> None:
    if expr == "torch.__version__":
        b.put("torch.version", version_in(value) if re.fullmatch(r"\d+\.\d+\S*", value) else None, STATED)
    elif expr == "torch.version.cuda":
        if value == "None":
            b.torch_build(None, STATED)
        elif re.fullmatch(r"\d+\.\d+(?:\.\d+)?", value):
            b.torch_build(short_version(value), STATED)
    elif expr == "torch.version.hip" and re.fullmatch(r"\d+\.\d+\S*", value):
        b.put("torch.hip", short_version(value), STATED)
    elif expr == "torch.cuda.is_available()" and value in ("True", "False"):
        b.put("torch.cuda_available", truth(value), STATED)
