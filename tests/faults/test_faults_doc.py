"""docs/reliability.md holds the fault table of every tests/faults module, and nothing stale."""

from __future__ import annotations

import re

from fault_table import DOC, fault_modules, sections


def test_every_row_names_a_test_of_its_module() -> None:
    for name, module in fault_modules().items():
        tests = [row.test for row in module.FAULTS]
        assert len(tests) == len(set(tests)), f"{name}: two rows name one test"
        missing = [t for t in tests if not callable(getattr(module, t, None))]
        assert not missing, f"{name}: rows name tests that do not exist: {missing}"


def test_reliability_doc_matches_the_fault_rows() -> None:
    doc = DOC.read_text(encoding="utf-8")
    wanted = sections()
    stale = set(re.findall(r"^### (tests/faults/\S+\.py)$", doc, flags=re.M)) - wanted.keys()
    assert not stale, f"docs/reliability.md has sections of no fault module: {sorted(stale)}"
    for name, text in wanted.items():
        assert text in doc, (
            f"docs/reliability.md: the section {name} differs from its FAULTS rows; "
            "print them with `python tests/faults/fault_table.py`"
        )
