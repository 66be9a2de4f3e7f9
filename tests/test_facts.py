"""The facts snapshot: round-trips through JSON and rejects malformed input with one-line errors."""

import json

import pytest

from envdoctor.facts import SCHEMA_VERSION, Facts, FactsError, Gpu, ScaledMmResult, load_facts


def test_facts_round_trip_through_json(tmp_path):
    facts = Facts(envdoctor_version="0.1.0")
    facts.nvidia.driver_version = "580.95.05"
    facts.nvidia.gpus = [Gpu(index=0, name="NVIDIA H200", compute_capability="9.0", memory_total_mib=143771)]
    facts.torch.status = "ok"
    facts.torch.arch_list = ["sm_90", "compute_120"]
    facts.torch.scaled_mm = ScaledMmResult(ok=True)
    path = tmp_path / "facts.json"
    path.write_text(facts.to_json())
    loaded = load_facts(path)
    assert loaded.nvidia.gpus == facts.nvidia.gpus
    assert loaded.torch == facts.torch
    assert loaded.origin == "file"
    assert loaded.schema_version == SCHEMA_VERSION


def test_load_facts_accepts_whole_check_json_output(tmp_path):
    path = tmp_path / "check.json"
    path.write_text(json.dumps({"schema_version": 1, "facts": Facts().to_dict(), "findings": []}))
    assert load_facts(path).torch.status == "unknown"


def test_unknown_stays_unknown():
    facts = Facts.from_dict({"nvidia": {}})
    assert facts.nvidia.gpus is None and facts.nvidia.driver_version is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 99}', "unsupported schema_version"),
        ('{"nvidia": {"gpus": "many"}}', "expected a list"),
        ('{"system": {"cpu_count": "two"}}', "expected int"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_facts_file_gives_one_line_error(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FactsError) as info:
        load_facts(path)
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_missing_facts_file(tmp_path):
    with pytest.raises(FactsError, match="no such file"):
        load_facts(tmp_path / "absent.json")
