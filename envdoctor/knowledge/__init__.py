"""Compatibility knowledge as data: YAML tables shipped with the package, every row with a source.

Each table file holds ``rows:``; every row names its ``source`` (a URL) and a ``status``
(``verified``, ``secondary`` or ``unverified``) so that a wrong row can be traced and fixed.
Typed accessors live in the modules beside this one; this module only loads and validates.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from envdoctor.yamlio import load_yaml

STATUSES = ("verified", "secondary", "unverified")


class KnowledgeError(ValueError):
    """A shipped table is malformed: the message names the file, the row and the problem."""


@cache
def load_table(name: str) -> tuple[dict[str, Any], ...]:
    """Rows of ``envdoctor/knowledge/<name>.yaml``, validated to carry a source and a status."""
    import yaml

    filename = f"{name}.yaml"
    try:
        text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
        data = load_yaml(text)
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{filename}: cannot load ({exc})") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise KnowledgeError(f"{filename}: expected a mapping with a 'rows' list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise KnowledgeError(f"{filename}: row {i} is not a mapping")
        if not str(row.get("source", "")).startswith("http"):
            raise KnowledgeError(f"{filename}: row {i} has no source URL")
        if row.get("status") not in STATUSES:
            raise KnowledgeError(
                f"{filename}: row {i} has status {row.get('status')!r}, not one of {STATUSES}"
            )
    return tuple(rows)


def load_all() -> None:
    """Parse every shipped table once (they are cached), e.g. while probes run."""
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".yaml"):
            load_table(entry.name[: -len(".yaml")])
