"""The activation file ``<prefix>/envdoctor-activate.sh``: how ``fix`` changes environment variables.

Reads and writes only that file (writes all or nothing, through :func:`envdoctor.fix.state.write_atomic`)
and, inside :func:`activated`, this process's ``os.environ`` for the re-check. envdoctor never edits
shell start-up files: the user sources the activation file.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envdoctor.fix.model import ACTIVATION_NAME
from envdoctor.fix.state import write_atomic

ACTIVATION_HEADER = (
    "# Written by `envdoctor fix`. Source it to apply the environment fixes:\n#   . {path}\n"
    "# (envdoctor never edits your shell start-up files.)\n"
)


def activation_path(prefix: str) -> Path:
    return Path(prefix) / ACTIVATION_NAME


def read_activation(prefix: str | None) -> dict[str, str | None]:
    """What the activation file sets (name -> value) or unsets (name -> None); {} when absent."""
    if not prefix:
        return {}
    try:
        text = activation_path(prefix).read_text(encoding="utf-8")
    except OSError:
        return {}
    return parse_activation(text)


def parse_activation(text: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
        elif len(words) == 2 and words[0] == "unset":
            env[words[1]] = None
    return env


def render_activation(path: Path, env: dict[str, str | None]) -> str:
    lines = [ACTIVATION_HEADER.format(path=shlex.quote(str(path)))]
    for name in sorted(env):
        value = env[name]
        lines.append(f"unset {name}\n" if value is None else f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


def write_activation(prefix: str, changes: dict[str, str | None]) -> Path:
    """Add ``changes`` to what the activation file already sets; returns its path."""
    path = activation_path(prefix)
    write_atomic(path, render_activation(path, read_activation(prefix) | changes))
    return path


def activation_text(prefix: str) -> str | None:
    """The activation file's text, as a snapshot keeps it; None when there is none."""
    try:
        return activation_path(prefix).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def restore_activation(prefix: str, text: str | None) -> None:
    """Put back the activation file a snapshot kept (``text`` None: there was none)."""
    path = activation_path(prefix)
    if text is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, text)


@contextmanager
def activated(env: dict[str, str | None]) -> Iterator[None]:
    """This process's environment as if the activation file had been sourced (for the re-check)."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
