"""Shipped YAML tables report every problem as ``file: row: field: problem``."""

from __future__ import annotations

import pytest

from envdoctor.knowledge import KnowledgeError, _validated
from envdoctor.signatures import SignatureError, parse_signature
from envdoctor.yamlio import load_rows


def test_a_file_without_the_list_or_with_a_row_that_is_no_mapping_names_file_and_row():
    with pytest.raises(KnowledgeError, match=r"^gpus\.yaml: expected a mapping with a 'rows' list$"):
        load_rows("gpus.yaml", "- a\n- b\n", "rows", KnowledgeError)
    with pytest.raises(SignatureError, match=r"^gpu\.yaml: row 1: not a mapping$"):
        load_rows("gpu.yaml", "signatures:\n  - {name: a}\n  - just text\n", "signatures", SignatureError)
    with pytest.raises(KnowledgeError, match=r"^gpus\.yaml: line 2: not valid YAML \("):
        load_rows("gpus.yaml", "rows: [unclosed\n", "rows", KnowledgeError)


def test_a_named_row_is_named_and_the_field_follows():
    row = {"name": "h100", "source": "https://example.org/", "status": "maybe"}
    with pytest.raises(KnowledgeError, match=r"^gpus\.yaml: h100: status: 'maybe' is not one of"):
        _validated("gpus.yaml", [row])
    with pytest.raises(SignatureError, match=r"^gpu\.yaml: too-old: pattern: missing$"):
        parse_signature("gpu.yaml", 0, {"name": "too-old", "severity": "error"})
    with pytest.raises(SignatureError, match=r"^gpu\.yaml: row 3: name: missing$"):
        parse_signature("gpu.yaml", 3, {"pattern": "x"})


def test_signature_fields_read_through_the_shared_field_reader():
    row = {k: "x" for k in ("name", "pattern", "severity", "message", "example")}
    row |= {"source": "https://example.org/", "confidence": "maybe"}
    with pytest.raises(SignatureError, match=r"^gpu\.yaml: x: confidence: 'maybe' is not one of high, low$"):
        parse_signature("gpu.yaml", 0, row)
    with pytest.raises(SignatureError, match=r"^gpu\.yaml: x: message: expected a non-empty string, got 3$"):
        parse_signature("gpu.yaml", 0, row | {"message": 3})


def test_every_shipped_table_declares_its_fields():
    import envdoctor.knowledge as knowledge

    assert {name for name, _, _ in knowledge._table_files()} == set(knowledge.TABLE_FIELDS)


@pytest.mark.parametrize(
    ("table", "old", "new", "error"),
    [
        ("torch_releases", "  - minor: \"2.13\"\n", "  - minor: \"2.13\"\n    lastest: \"2.13.1\"\n",
         r"^torch_releases\.yaml: row \d+: lastest: unknown field \(expected one of also, checked, "),
        ("torch_releases", "    cuda_variants: [cu126, cu130, cu132]\n", "",
         r"^torch_releases\.yaml: row \d+: cuda_variants: missing$"),
        ("gpus", "    cc: ", "    cc: null  # ", r"^gpus\.yaml: [^:]+: cc: missing$"),
    ],
)  # fmt: skip
def test_a_hand_edited_table_names_file_row_and_field(tmp_path, monkeypatch, table, old, new, error):
    import envdoctor.knowledge as knowledge

    text = (knowledge.TABLES_DIR / f"{table}.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / f"{table}.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setattr(knowledge, "TABLES_DIR", tmp_path)
    with pytest.raises(KnowledgeError, match=error):
        knowledge._parse_table(table)
