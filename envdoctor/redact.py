"""Make untrusted text safe to print and safe to paste into a public issue.

Two jobs, applied to every string of every output format (text, markdown, JSON) just before it is
rendered:

- **Terminal control sequences are removed.** A pasted report, a facts file, a GPU name from a driver
  or an error message can carry ``ESC ] 0;title BEL`` (retitles the terminal), cursor moves, colours,
  C1 controls or bidirectional overrides. Only newline and tab survive.
- **What identifies the user is replaced.** The home directory becomes ``~``, the user name
  ``<user>``, host names ``<host>`` (unless kept on request), and credential-shaped values
  (``token=...``, ``Authorization: Bearer ...``, ``hf_...``/``ghp_...``/``sk-...`` tokens, AWS key
  ids, ``user:password@`` in URLs) become ``***``.

Every pattern is linear in the length of the text (no nested or overlapping quantifiers), so a
multi-megabyte paste costs milliseconds.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envdoctor.facts import Facts
    from envdoctor.findings import Finding

REDACTED = MASK = "***"
USER, HOST = "<user>", "<host>"

_CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -~]?"  # any other escape
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x90\x98\x9d-\x9f][^\x07\x1b\x9c]*(?:\x07|\x9c|\x1b\\)?"  # 8-bit DCS, SOS, OSC, PM, APC strings
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # C0/C1, bidi controls
)
# A secret-named key (the tail of "HF_TOKEN", "db.password", "apiKey") right before its separator; the
# value is matched separately. Starting at the secret word keeps the scan linear and lets a key that
# only contains the word ("tokenizer=") go.
_SECRET_KEY_SEP = re.compile(
    r"(?:token|api[_-]?key|secret|passw(?:or)?d|credentials?|private[_-]?key)s?\"?[ \t]*[=:][ \t]*\"?", re.I
)
# A key that names a secret by its last word ("HF_TOKEN", "api_key", "db.password"); "tokens_per_s" does not.
_SECRET_KEY = re.compile(
    r"(?:token|api[_-]?key|secret|passw(?:or)?d|credentials?|private[_-]?key|auth)s?$", re.I
)
_SECRET_WORDS = ("token", "key", "secret", "passw", "credential")
_VALUE = re.compile(r"[^\s\"'&,;]+")
# Values that are settings, not secrets ("max_tokens=512", "use_auth_token=True").
_PLAIN_VALUE = re.compile(r"^(?:\d+|true|false|none|null)$", re.I)
_AUTHORIZATION = re.compile(r"\b(?P<head>Authorization\s*[:=]\s*(?:(?:Bearer|Basic|Token)\s+)?)\S+", re.I)
_BEARER = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.I)
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{20,}"
    r"|sk-[A-Za-z0-9_-]{20,}|glpat-[\w-]{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16}"
    r"|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,})"
)
_TOKEN_PREFIXES = ("hf_", "gh", "github_pat_", "sk-", "glpat-", "xox", "AKIA", "eyJ")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
# Home folders of any user: Linux, macOS, Windows (both slashes).
_HOMES = re.compile(
    r"(?<![\w.-])(?:/home|/Users|[A-Za-z]:[\\/](?:Users|Documents and Settings))[\\/](?P<name>[\w.-]+)"
)
# A shell prompt that opens a pasted line: "(venv) alice@gpu-box-3:~/work$ nvidia-smi".
_PROMPT = re.compile(r"^\s*(?:\([\w.-]+\)\s*)?(?P<user>[a-z_][\w.-]*)@(?P<host>[\w.-]+):[~/]", re.M)
# Account and host names that identify nobody (and would mangle ordinary words if replaced).
GENERIC_NAMES = frozenset(
    {"root", "user", "users", "ubuntu", "admin", "debian", "runner", "jovyan", "nobody", "vscode", "coder",
     "ec2-user", "centos", "fedora", "localhost", "local", "shared", "share", "public", "default", "home",
     "data", "work", "models", "projects", "scratch", "storage", "software", "apps", "test", "jenkins"}
)  # fmt: skip


def strip_controls(text: str) -> str:
    """``text`` without terminal control sequences and control characters (newline and tab kept)."""
    return _CONTROLS.sub("", text)


def redact_credentials(text: str) -> str:
    """Replace the values of secret-named keys, bearer tokens, known token shapes and URL passwords."""
    lowered = text.lower()  # cheap substring tests spare most texts a full scan per pattern
    if any(word in lowered for word in _SECRET_WORDS):
        text = _redact_key_values(text)
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(lambda m: f"{m.group('head')}{REDACTED}", text)
    if "bearer" in lowered:
        text = _BEARER.sub(f"Bearer {REDACTED}", text)
    if any(prefix in text for prefix in _TOKEN_PREFIXES):
        text = _TOKEN_SHAPES.sub(REDACTED, text)
    return _URL_USERINFO.sub(f"{REDACTED}@", text) if "://" in text else text


def _redact_key_values(text: str) -> str:
    """``token=abc`` -> ``token=***`` for every secret-named key (a setting such as ``max_tokens=512`` stays)."""
    out, last = [], 0
    for m in _SECRET_KEY_SEP.finditer(text):
        if m.start() < last:
            continue
        value = _VALUE.match(text, m.end())
        if value is None or _PLAIN_VALUE.match(value.group()):
            continue
        out += [text[last : m.end()], REDACTED]
        last = value.end()
    out.append(text[last:])
    return "".join(out)


@dataclass
class Redactor:
    """Replaces the home folder, user names, host names and credentials in strings and nested data."""

    home: str | None = None
    users: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    keep_hosts: bool = False
    _names: re.Pattern[str] | None = field(default=None, init=False, repr=False)
    _name_list: list[str] = field(default_factory=list, init=False, repr=False)

    @classmethod
    def for_this_machine(cls, keep_hosts: bool = False, sample: str | None = None) -> Redactor:
        """A redactor for this machine's home, user and host name, plus those a pasted ``sample`` shows
        (home folders such as /home/alice, shell prompts such as alice@gpu-box:~$)."""
        home = os.path.expanduser("~")
        users, hosts = set(), set()
        with contextlib.suppress(OSError, KeyError, ImportError):
            users.add(getpass.getuser())
        host = socket.gethostname()
        hosts.update({host, host.split(".")[0]})
        if sample:  # substring gates first: most pastes have no home folder or prompt to scan for
            if any(h in sample for h in ("/home/", "Users", "Documents and Settings")):
                users.update(m.group("name") for m in _HOMES.finditer(sample))
            if "@" in sample:
                for m in _PROMPT.finditer(sample):
                    users.add(m.group("user"))
                    hosts.add(m.group("host"))
        return cls(
            home=home if home not in ("", "/") else None, users=users, hosts=hosts, keep_hosts=keep_hosts
        )

    def __post_init__(self) -> None:
        names = {n for n in self.users if _personal(n)}
        if not self.keep_hosts:
            names |= {n for n in self.hosts if _personal(n)}
        self._name_list = sorted(
            names, key=len, reverse=True
        )  # longest first: "gpu-box-7.lab" before "gpu-box-7"
        if names:
            alternatives = "|".join(re.escape(n) for n in self._name_list)
            self._names = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w-])")

    def text(self, value: str) -> str:
        """One string made safe: controls stripped, credentials, home, user and host names replaced."""
        value = redact_credentials(strip_controls(value))
        if self.home and self.home in value:
            value = re.sub(rf"(?<![\w.-]){re.escape(self.home)}(?![\w.-])", "~", value)
        if "/home/" in value or "Users" in value or "Documents and Settings" in value:
            value = _HOMES.sub(lambda m: "~" if _personal(m.group("name")) else m.group(0), value)
        if self._names is not None and any(name in value for name in self._name_list):
            value = self._names.sub(self._name_for, value)
        return value

    def _name_for(self, m: re.Match[str]) -> str:
        return USER if m.group(0) in self.users else HOST

    def data(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, strings, numbers) with every string made safe, keys too."""
        if isinstance(value, str):
            return self.text(value)
        return _walk(value, self.text)


def redact_text(text: str) -> str:
    """``text`` with controls stripped and credentials masked; paths and names kept (an agent needs them)."""
    return redact_credentials(strip_controls(text))


def redact(value: Any) -> Any:
    """JSON-like ``value`` with every string passed through :func:`redact_text` and the scalar value of every
    secret-named key masked."""
    return _walk(value, redact_text)


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {
            text(k) if isinstance(k, str) else k: REDACTED if _secret_item(k, v) else _walk(v, text)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, text) for v in value]
    return value


def _secret_item(key: object, value: object) -> bool:
    """A secret-named key holding a string that is not a flag (numbers such as ``max_tokens: 512`` stay)."""
    if not isinstance(key, str) or not isinstance(value, str) or not _SECRET_KEY.search(key):
        return False
    return value.lower() not in ("", "true", "false", "none", "null")


def _personal(name: str) -> bool:
    return len(name) >= 3 and name.lower() not in GENERIC_NAMES


def redact_check(facts: Facts, findings: list[Finding], redactor: Redactor) -> tuple[Facts, list[Finding]]:
    """Copies of the facts and findings of a check with every string made safe (what every format shows)."""
    from envdoctor.facts import Facts
    from envdoctor.findings import Finding

    shown = Facts.from_dict(redactor.data(facts.to_dict()))
    return shown, [Finding.from_dict(redactor.data(f.to_dict())) for f in findings]
