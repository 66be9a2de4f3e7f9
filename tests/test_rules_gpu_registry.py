"""Every torch/driver/GPU rule is documented, sourced, and silent on unknown facts."""

from __future__ import annotations

from gpu_rules_helpers import GPU_RULE_IDS, gpu_rules, run

from envdoctor.facts import Facts
from envdoctor.findings import Severity


def test_rule_ids_are_exactly_the_documented_ones():
    assert sorted(r.id for r in gpu_rules()) == sorted(GPU_RULE_IDS)


def test_every_rule_has_metadata_docstring_and_sources():
    for r in gpu_rules():
        assert r.name and r.summary and r.fix, r.id
        assert isinstance(r.severity, Severity)
        assert r.area in {"system", "nvidia", "cuda", "torch", "packages", "container"}
        assert r.sources and all(s.startswith("https://") for s in r.sources), r.id
        assert len(r.doc.splitlines()) >= 3, r.id
        assert "Why" in r.doc and "Fix" in r.doc, r.id


def test_no_rule_fires_on_empty_facts():
    assert run(Facts()) == []


def test_no_rule_fires_when_only_the_python_version_is_known():
    facts = Facts()
    facts.python.version = "3.12.3"
    assert run(facts) == []
