"""docs/reliability.md, section "fix", names exactly the fault tests of tests/faults/test_fix_*.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/reliability.md has no section {title!r}"
    return match.group(1)


def test_fix_section_lists_every_fix_fault_test_and_nothing_else():
    section = _section((REPO / "docs" / "reliability.md").read_text(encoding="utf-8"), "fix")
    named = set(re.findall(r"`(tests/faults/test_fix_\w+\.py)::(test_\w+)`", section))
    defined = set()
    for path in sorted((REPO / "tests" / "faults").glob("test_fix_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = str(path.relative_to(REPO))
        defined |= {
            (rel, n.name) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
        }
    assert named == defined, (
        f"missing from the table: {sorted(defined - named)}; not a test: {sorted(named - defined)}"
    )
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`tests/" in line]
    assert all(len(row.split(" | ")) == 4 for row in rows)  # fault, what envdoctor does, bound, test
