"""The seventh blind round (``batch: blind-7`` and ``blind-7b`` in tests/corpus; blind figures in
docs/triage.md): threads from the DeepSeek-R1 reproduction wave and RL / fine-tuning training stacks
(R1-V, EasyR1 and projects on it, OpenRLHF, RL2, verl, trl, torchtune, NeMo-RL, instructlab, Lightning)
and from vision, speech and web-UI stacks (Ultralytics, whisper, PEFT, accelerate, InvokeAI, Fooocus,
Forge, SAM 2, Windows and WSL users), scored with report + error and facts only, and no error finding
on its healthy reports.

The floor is the figure reached after the changes: 50 of 51 with the error lines (blind: 27 of 35, then
8 of 16 for the threads collected after the first changes)."""

from __future__ import annotations

from test_corpus import CASES, _accuracy, _is_full_report, _load, _ranked

from envdoctor.findings import Severity

BATCH = [p for p in CASES if _load(p).get("batch") in ("blind-7", "blind-7b")]
BROKEN = [p for p in BATCH if _load(p)["expected_id"]]
HEALTHY = [p for p in BATCH if not _load(p)["expected_id"]]


def test_seventh_round_report_and_error_rank_the_confirmed_id_first(capsys):
    accuracy, misses = _accuracy(BROKEN, with_errors=True)
    facts_only, _ = _accuracy(BROKEN, with_errors=False)
    full = [p for p in BROKEN if _is_full_report(_load(p)["report"])]
    with capsys.disabled():
        print(f"\nseventh round, report + error: {accuracy:.0%} of {len(BROKEN)}; misses: {misses}")
        print(f"seventh round, facts only: {facts_only:.0%}; complete reports: {len(full)}")
    assert len(BROKEN) >= 51 and len(HEALTHY) >= 10
    assert accuracy >= 0.98, misses


def test_seventh_round_healthy_reports_raise_no_error_finding_and_are_read_as_tool_output():
    alarms = [
        f"{p.stem}: {d.finding.id}"
        for p in HEALTHY
        for d in _ranked(_load(p)["report"] + "\n" + _load(p)["error"])
        if d.finding.severity is Severity.ERROR
    ]
    assert not alarms
    # trl env's devices and Lightning's table are tool output: nothing in them reads as prose.
    complete = [p.stem for p in HEALTHY if _is_full_report(_load(p)["report"])]
    assert len(complete) >= 2, complete
