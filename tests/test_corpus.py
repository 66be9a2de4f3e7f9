"""Public corpus: real reports and errors from GitHub issues, root cause confirmed in each thread.

Each case in tests/corpus/*.yaml holds the issue URL, the confirmed finding id, the confirming comment
and the pasted report and error text, verbatim. The diagnosis must rank the confirmed id first. The
accuracy is printed (e.g. `pytest -q tests/test_corpus.py -rA`) and held to a floor; facts alone (the
report without its error lines) are measured separately.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envdoctor.explain import rank
from envdoctor.reports import ReportError, facts_from_report

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
# Ids that facts alone can establish from a report (the brief's "driver/arch/CPU-build/numpy" cases).
FACTS_IDS = {"driver-too-old", "arch-not-in-wheel", "torch-cpu-build", "numpy-abi"}


def _load(path: Path) -> dict:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {"url", "expected_id", "confirmation", "report", "error"} <= set(case), path.name
    return case


def _top(text: str) -> str | None:
    try:
        facts = facts_from_report(text)
    except ReportError:
        return None
    ranked = rank(facts)
    return ranked[0].finding.id if ranked else None


def _accuracy(with_errors: bool) -> tuple[float, list[str]]:
    misses = []
    for path in CASES:
        case = _load(path)
        text = case["report"] + ("\n" + case["error"] if with_errors else "")
        if _top(text) != case["expected_id"]:
            misses.append(path.stem)
    return 1 - len(misses) / len(CASES), misses


def test_corpus_has_at_least_30_confirmed_public_cases():
    assert len(CASES) >= 30
    ids = set()
    for path in CASES:
        case = _load(path)
        assert case["url"].startswith("https://github.com/"), path.name
        assert case["confirmation"].strip(), path.name
        ids.add(case["expected_id"])
    # The variety the corpus must cover.
    assert {"arch-not-in-wheel", "driver-too-old", "torch-cpu-build", "numpy-abi", "cuda-lib-conflict"} <= ids
    assert {"ext-abi-mismatch", "driver-library-mismatch", "container-gpu", "shm-too-small"} <= ids
    assert {"fp8-unsupported", "nvcc-mismatch"} <= ids


def test_corpus_report_and_error_rank_the_confirmed_id_first(capsys):
    accuracy, misses = _accuracy(with_errors=True)
    with capsys.disabled():
        print(f"\ncorpus accuracy (report + error): {accuracy:.0%} of {len(CASES)} cases; misses: {misses}")
    assert accuracy >= 0.9, misses


def test_corpus_facts_only_accuracy_is_measured(capsys):
    """Without error lines most excerpts carry too few facts; the figure is reported, not tuned."""
    accuracy, misses = _accuracy(with_errors=False)
    with capsys.disabled():
        print(f"\ncorpus accuracy (facts only, error lines removed): {accuracy:.0%} of {len(CASES)} cases")
    hits = [p.stem for p in CASES if p.stem not in misses]
    assert all(_load(CORPUS / f"{h}.yaml")["expected_id"] in FACTS_IDS | {"shm-too-small"} for h in hits)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case_never_raises_and_never_diagnoses_from_nothing(path):
    case = _load(path)
    if not case["report"].strip():
        with pytest.raises(ReportError):
            facts_from_report(case["report"])
    else:
        facts = facts_from_report(case["report"] + "\n" + case["error"])
        assert facts.origin == "report"
