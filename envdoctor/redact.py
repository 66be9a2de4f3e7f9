"""Secrets out of anything envdoctor hands to someone else (an agent, a pasted page).

Facts carry allow-listed environment variables only, but a pasted report, an error message or a pip
index URL can still hold a token. :func:`redact` walks a JSON-like value and replaces: the value of any
key that names a secret (the same words the environment probe refuses), passwords in URLs, and
tokens of the well-known shapes (Hugging Face, GitHub, OpenAI-style, AWS, Slack, bearer headers).
"""

from __future__ import annotations

import re
from typing import Any

from envdoctor.probes.system import DENIED_ENV_WORDS

MASK = "<redacted>"
SECRET_KEY = re.compile("|".join(DENIED_ENV_WORDS), re.IGNORECASE)
# Words that look like secrets but name none: fact paths envdoctor itself uses.
HARMLESS_KEYS = re.compile(r"^(?:tokens_per_s|keys?|monkey\w*)$", re.IGNORECASE)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<=://)([^/\s:@]+):([^/\s@]+)@"), rf"\1:{MASK}@"),  # https://user:password@host
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    # NAME=value / NAME: value where NAME says secret (HF_TOKEN=..., "password": ...).
    (
        re.compile(
            r"(?i)\b([A-Z0-9_]*(?:" + "|".join(DENIED_ENV_WORDS) + r")[A-Z0-9_]*[\"']?\s*[=:]\s*[\"']?)"
            r"(?!<redacted>)[^\s\"',;]+"
        ),
        rf"\1{MASK}",
    ),
)


def redact_text(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, strings, scalars) with secrets masked."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            secret = isinstance(key, str) and SECRET_KEY.search(key) and not HARMLESS_KEYS.match(key)
            out[key] = MASK if secret and isinstance(item, (str, int, float)) else redact(item)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
