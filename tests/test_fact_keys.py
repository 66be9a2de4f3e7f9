"""A dotted fact key that names no fact (a typo in a signature file or a report parser) is an error."""

from __future__ import annotations

import pytest

from envdoctor.facts import is_fact_path
from envdoctor.paste.builder import STATED, Builder
from envdoctor.signatures import SignatureError, parse_signature


def _entry(**extra: object) -> dict[str, object]:
    return {
        "name": "gpu-too-old",
        "id": "arch-not-in-wheel",
        "severity": "error",
        "confidence": "high",
        "pattern": r"Found GPU ?(?P<index>\d+) (?P<gpu>.{1,60}?) which is of cuda capability (?P<cap>\d+\.\d+)",
        "message": "{gpu} is too old",
        "source": "https://github.com/alievk/avatarify-python/issues/58",
        "example": "Found GPU0 GeForce GTX 770 which is of cuda capability 3.0.",
        **extra,
    }


def test_fact_paths_follow_the_facts_sections():
    assert is_fact_path("torch.version") and is_fact_path("nvidia.cuda_driver_version")
    assert is_fact_path("torch.scaled_mm.error")  # through an optional nested section
    assert not is_fact_path("torch.versoin") and not is_fact_path("torch.version.major")
    assert not is_fact_path("gpus.name")


def test_a_signature_naming_no_fact_is_rejected_with_file_and_entry():
    assert parse_signature("gpu.yaml", 0, _entry(facts={"gpu": "gpu.name", "cap": "gpu.capability"}))
    assert parse_signature("gpu.yaml", 0, _entry(sets={"torch.cuda_available": False}))
    with pytest.raises(
        SignatureError, match=r"gpu\.yaml: gpu-too-old: facts: 'torch.arch_lsit' is not a fact"
    ):
        parse_signature("gpu.yaml", 0, _entry(facts={"gpu": "torch.arch_lsit"}))
    with pytest.raises(SignatureError, match="gpu-too-old: sets: 'nvidia.driver' is not a fact"):
        parse_signature("gpu.yaml", 0, _entry(sets={"nvidia.driver": "550"}))


def test_a_report_parser_cannot_file_a_value_under_a_misspelt_key():
    b = Builder()
    b.put("torch.version", "2.6.0", STATED)
    with pytest.raises(ValueError, match="'torch.verison' is not a fact"):
        b.put("torch.verison", "2.6.0", STATED)
    assert b.build().torch.version == "2.6.0"
