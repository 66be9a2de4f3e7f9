"""A probe, a command or an image module says in its first lines what it does and what it may touch.

The opening text (the docstring, or the leading comment of a child script that runs as ``python -c``)
starts with a one-line summary, and a ``Touches:`` paragraph follows within its first lines: the
processes it starts, the files it writes, the sockets or engines it talks to, or "nothing".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import envdoctor

ROOT = Path(envdoctor.__file__).parent
FIRST_LINES = 6  # "Touches:" must start within this many lines of the opening text
MODULES = sorted(
    str(p.relative_to(ROOT)) for folder in ("probes", "cli", "image") for p in (ROOT / folder).glob("*.py")
)


def opening_text(source: str) -> str:
    """The module docstring, else the leading ``#`` comment block without its marks."""
    docstring = ast.get_docstring(ast.parse(source))
    if docstring:
        return docstring
    lines = []
    for line in source.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


@pytest.mark.parametrize("module", MODULES)
def test_opening_lines_say_what_the_module_does_and_touches(module: str) -> None:
    lines = opening_text((ROOT / module).read_text(encoding="utf-8")).splitlines()
    assert lines and lines[0].strip(), f"{module}: no summary line"
    touches = [i for i, line in enumerate(lines[:FIRST_LINES]) if line.startswith("Touches: ")]
    assert touches, f"{module}: no 'Touches:' line in its first {FIRST_LINES} lines"
    assert len(lines[touches[0]]) > len("Touches: ") + 3


def test_every_folder_is_covered() -> None:
    """The parametrisation above sees the modules of all three folders (a moved folder would empty it)."""
    folders = {m.split("/")[0] for m in MODULES}
    assert folders == {"probes", "cli", "image"} and len(MODULES) > 30
