"""Public corpus: real reports and errors from GitHub issues, root cause confirmed in each thread.

Each case in tests/corpus/*.yaml holds the issue URL, the confirmed finding id, the confirming comment
and the pasted report and error text, verbatim. The diagnosis must rank the confirmed id first. The
accuracy is printed (e.g. `pytest -q tests/test_corpus.py -rA`) and held to a floor; facts alone (the
report without its error lines) are measured separately, and on complete reports held to a floor.
Healthy cases (``expected_id: null``) are real reports of working environments: no error finding.
The report field is the paste verbatim with its error lines moved to the error field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.paste import ReportError, facts_from_report

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
# Ids that facts alone can establish from a report.
FACTS_IDS = {"driver-too-old", "arch-not-in-wheel", "torch-cpu-build", "numpy-abi", "ext-abi-mismatch"}
FACTS_IDS |= {"bf16-unsupported", "nvcc-mismatch"}  # a GPU named by a refusal, nvcc stated by check_env
# Kinds of confirmation (cases without one predate the field and were confirmed by a maintainer or
# the reporter's working fix): "maintainer", "reporter", "runtime-error" (torch's own diagnosis in
# the thread), "facts+symptom" (the stated versions break a documented requirement and the report
# shows the symptom), "healthy" (the thread's cause was elsewhere; expected_id is null).
KINDS = {"maintainer", "reporter", "runtime-error", "facts+symptom", "healthy"}


def _load(path: Path) -> dict:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {"url", "expected_id", "confirmation", "report", "error"} <= set(case), path.name
    return case


BROKEN = [p for p in CASES if _load(p)["expected_id"]]
HEALTHY = [p for p in CASES if not _load(p)["expected_id"]]


def _ranked(text: str) -> list:
    try:
        facts = facts_from_report(text)
    except ReportError:
        return []
    return rank(facts)


def _top(text: str) -> str | None:
    ranked = _ranked(text)
    return ranked[0].finding.id if ranked else None


def _is_full_report(text: str) -> bool:
    """A report whose tool output states the torch build and the GPU or driver (not an excerpt of a few
    lines, nor versions written in prose)."""
    try:
        facts = facts_from_report(text)
    except ReportError:
        return False
    said = facts.stated
    torch = facts.torch.version and "torch.version" not in said
    gpus = facts.nvidia.gpus and "nvidia.gpus" not in said
    driver = facts.nvidia.driver_version and "nvidia.driver_version" not in said
    return bool(torch and (gpus or driver))


def _accuracy(paths: list[Path], with_errors: bool) -> tuple[float, list[str]]:
    misses = []
    for path in paths:
        case = _load(path)
        text = case["report"] + ("\n" + case["error"] if with_errors else "")
        if _top(text) != case["expected_id"]:
            misses.append(path.stem)
    return (1 - len(misses) / len(paths)) if paths else 0.0, misses


def test_corpus_has_confirmed_public_cases_of_every_kind():
    assert len(BROKEN) >= 80 and len(HEALTHY) >= 13
    ids = set()
    for path in CASES:
        case = _load(path)
        assert case["url"].startswith("https://github.com/"), path.name
        assert case["confirmation"].strip(), path.name
        assert case.get("confirmation_kind", "maintainer") in KINDS, path.name
        assert (case.get("confirmation_kind") == "healthy") == (not case["expected_id"]), path.name
        ids.add(case["expected_id"])
    # The variety the corpus must cover.
    assert {"arch-not-in-wheel", "driver-too-old", "torch-cpu-build", "numpy-abi", "cuda-lib-conflict"} <= ids
    assert {"ext-abi-mismatch", "driver-library-mismatch", "container-gpu", "shm-too-small"} <= ids
    assert {"fp8-unsupported", "nvcc-mismatch", "bf16-unsupported", "requirement-conflict"} <= ids
    assert "python-unsupported" in ids


def test_corpus_report_and_error_rank_the_confirmed_id_first(capsys):
    accuracy, misses = _accuracy(BROKEN, with_errors=True)
    with capsys.disabled():
        print(f"\ncorpus accuracy (report + error): {accuracy:.0%} of {len(BROKEN)} cases; misses: {misses}")
    assert accuracy >= 0.95, misses


def test_corpus_facts_only_accuracy_on_full_reports(capsys):
    """Error lines removed. Most older cases are excerpts without the environment (measured, not
    tuned); on complete reports (torch build plus GPU or driver stated) facts must carry the diagnosis."""
    accuracy, misses = _accuracy(BROKEN, with_errors=False)
    full = [p for p in BROKEN if _is_full_report(_load(p)["report"])]
    full_accuracy, full_misses = _accuracy(full, with_errors=False)
    with capsys.disabled():
        print(f"\ncorpus accuracy (facts only, error lines removed): {accuracy:.0%} of {len(BROKEN)} cases")
        print(
            f"corpus accuracy (facts only, full reports): {full_accuracy:.0%} of {len(full)} cases; "
            f"misses: {full_misses}"
        )
    assert len(full) >= 9
    # 29 of 39: the misses are FP8 checkpoints on Ampere (the model asks for FP8, the environment
    # cannot say it will) and vLLM pastes cut before the line naming vLLM (docs/triage.md, 8c).
    assert full_accuracy >= 0.74, full_misses
    hits = [p.stem for p in BROKEN if p.stem not in misses]
    # requirement-conflict: a thread whose title quotes the import error (explained from the API index)
    # build-tools-missing: a report that says in words that cmake is not installed
    # cuda-lib-conflict: a thread whose title quotes the missing libcudnn.so.9
    facts_ids = FACTS_IDS | {
        "shm-too-small",
        "requirement-conflict",
        "build-tools-missing",
        "cuda-lib-conflict",
    }
    assert all(_load(CORPUS / f"{h}.yaml")["expected_id"] in facts_ids for h in hits)


def test_corpus_healthy_reports_raise_no_error_finding(capsys):
    """Real reports of working environments (the thread's cause was a code bug or a question)."""
    alarms, advisories = [], []
    for path in HEALTHY:
        case = _load(path)
        for d in _ranked(case["report"] + "\n" + case["error"]):
            if d.finding.severity is Severity.ERROR:
                alarms.append(f"{path.stem}: {d.finding.id}")
            elif d.finding.severity is Severity.WARNING:
                advisories.append(f"{path.stem}: {d.finding.id}")
    with capsys.disabled():
        print(
            f"\nfalse alarms (error findings) on {len(HEALTHY)} healthy reports: {len(alarms)}; "
            f"warnings: {advisories}"
        )
    assert not alarms


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case_never_raises_and_never_diagnoses_from_nothing(path):
    case = _load(path)
    if not case["report"].strip():
        with pytest.raises(ReportError):
            facts_from_report(case["report"])
    else:
        facts = facts_from_report(case["report"] + "\n" + case["error"])
        assert facts.origin == "report"
