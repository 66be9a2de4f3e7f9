"""Rendering: the docs' findings table is generated from the rules, and every format is well formed."""

import json
from pathlib import Path

from cli_helpers import invoke

from envdoctor.facts import Facts, load_facts
from envdoctor.render import render_json, render_markdown, rules_markdown
from envdoctor.rules import all_rules, evaluate

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "facts"


def test_docs_findings_table_is_generated_from_the_rules():
    table = (ROOT / "docs" / "findings.md").read_text()
    assert rules_markdown() in table, "regenerate docs/findings.md with `envdoctor rules --markdown`"
    for r in all_rules():
        assert f"`{r.id}`" in table


def test_json_output_has_exactly_the_three_keys_and_round_trips():
    facts = load_facts(FIXTURES / "rtx5090_torch260_cu126.json")
    payload = json.loads(render_json(facts, evaluate(facts)))
    assert set(payload) == {"schema_version", "facts", "findings"}
    assert Facts.from_dict(payload["facts"]).nvidia == facts.nvidia
    assert payload["findings"][0]["id"] == "arch-not-in-wheel"


def test_markdown_report_lists_findings_and_folds_the_facts():
    facts = load_facts(FIXTURES / "driver535_torch211_cu130.json")
    text = render_markdown(facts, evaluate(facts))
    assert "| ✗ | NVIDIA driver & GPUs |" in text
    assert "**error** `driver-too-old`" in text
    assert "<details>" in text and '"driver_version": "535' in text


def test_fixture_text_report_shows_area_marks_evidence_and_fix_and_exits_1():
    result = invoke(["check", "--facts", str(FIXTURES / "rtx5090_torch260_cu126.json")])
    assert result.exit_code == 1
    out = result.output
    assert "[✗] PyTorch" in out and "[✓] System" in out
    assert "arch-not-in-wheel" in out and "evidence" in out and "fix" in out


def test_fixture_healthy_report_exits_0():
    result = invoke(["check", "--facts", str(FIXTURES / "healthy_h200.json"), "--json"])
    assert result.exit_code == 0, result.output
    assert [f for f in json.loads(result.output)["findings"] if f["severity"] == "error"] == []


def test_unknown_format_is_a_usage_error():
    result = invoke(["check", "--format", "yaml"])
    assert result.exit_code == 2


def test_the_gpu_summary_counts_each_kind_of_gpu() -> None:
    from envdoctor.facts import Gpu
    from envdoctor.render import _summary

    facts = Facts(origin="report")
    facts.nvidia.gpus = [
        Gpu(index=i, name=name, compute_capability=cap)
        for i, (name, cap) in enumerate([("NVIDIA A100", "8.0"), ("NVIDIA A100", "8.0"), ("Tesla T4", "7.5")])
    ]
    assert "2× NVIDIA A100 (sm 8.0), 1× Tesla T4 (sm 7.5)" in _summary("nvidia", facts)
