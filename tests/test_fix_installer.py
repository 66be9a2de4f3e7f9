"""What a failed pip step says: the line of pip's real output that explains it."""

from __future__ import annotations

from pathlib import Path

from envdoctor.fix.installer import _error_line

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_resolver_conflict_names_its_causes_and_the_unreachable_index() -> None:
    """Real output of pip asked for torch 2.15.0 from an index it cannot reach, under a constraint: the
    causes are on stdout, the errors on stderr."""
    stem = FIXTURES / "pip_conflict_unreachable_index"
    line = _error_line(stem.with_suffix(".stderr").read_text(), stem.with_suffix(".stdout").read_text())
    assert line.startswith(
        "ERROR: Cannot install torch==2.15.0 because these package versions have conflicting"
    )
    assert "The user requested (constraint) torch<=2.14.1" in line
    assert "ResolutionImpossible" not in line
    assert "an index could not be reached: Name or service not known" in line


def test_no_matching_distribution_is_pips_last_error_line() -> None:
    line = _error_line((FIXTURES / "pip_no_matching_distribution.txt").read_text())
    assert line == "ERROR: No matching distribution found for nosuchpackage-xyz==1.0"
