"""Synthetic fleets built from the recorded facts fixtures: one `check --json` document per node."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "facts"


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return data.get("facts", data)


def document(facts: dict[str, Any], host: str, findings: list[dict[str, Any]] | None = None) -> dict:
    """What `check --json --write` writes on one node (findings as `check` would list them)."""
    return {"schema_version": 1, "host": host, "facts": facts, "findings": findings or []}


def write_fleet(
    folder: Path,
    count: int,
    base: str = "healthy_h200",
    odd: dict[int, Callable[[dict[str, Any]], None]] | None = None,
    findings: dict[int, list[dict[str, Any]]] | None = None,
    width: int = 3,
) -> list[str]:
    """node001..nodeN in ``folder``; ``odd[i]`` mutates node i's facts, ``findings[i]`` are its findings."""
    folder.mkdir(parents=True, exist_ok=True)
    facts = fixture(base)
    names = []
    for i in range(1, count + 1):
        name = f"node{i:0{width}d}"
        mine = facts
        if odd and i in odd:
            mine = copy.deepcopy(facts)
            odd[i](mine)
        doc = document(mine, name, (findings or {}).get(i))
        (folder / f"{name}.json").write_text(json.dumps(doc, indent=2))
        names.append(name)
    return names


def set_driver(version: str) -> Callable[[dict[str, Any]], None]:
    def mutate(facts: dict[str, Any]) -> None:
        facts["nvidia"]["driver_version"] = version

    return mutate


def error(fid: str, message: str = "broken") -> dict[str, Any]:
    return {"id": fid, "severity": "error", "message": message, "evidence": {}, "fix": ""}
