"""YAML reading with libyaml's C loader when present: five times faster, and `check` reads tables.

Shipped tables (knowledge rows, error signatures) are lists of mappings, and every problem found in
one is reported the same way: ``file: row: field: problem``, the row named by its ``name`` when it
has one, else by its position.
"""

from __future__ import annotations

from typing import Any


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` semantics, with the C loader when the PyYAML build has one."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_rows(filename: str, text: str, key: str, error: type[Exception]) -> list[dict[str, Any]]:
    """The mappings listed under ``key`` in a YAML file; raises ``error`` naming the file (and the
    row) when the text is not YAML, has no such list, or lists something other than a mapping."""
    import yaml

    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{filename}: cannot load ({exc})") from None
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise error(f"{filename}: expected a mapping with a '{key}' list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise error(f"{row_name(filename, i, row)}: not a mapping")
    return rows


def row_name(filename: str, i: int, row: Any) -> str:
    """``file: name`` for a row with a name, else ``file: row i``: how every row's error starts."""
    name = row.get("name") if isinstance(row, dict) else None
    return f"{filename}: {name}" if isinstance(name, str) and name else f"{filename}: row {i}"
