"""What one node of a fleet writes: its ``check`` result as a file, or one health line for Slurm.

``check --write DIR/{host}.json`` expands ``{host}`` itself (Slurm's node name, else the Kubernetes node
name, else the short host name), so that ``srun`` needs no shell quoting of ``$SLURMD_NODENAME``. A check
that could not run at all still writes a file, with an ``error``: the fleet report then lists the node
as unknown instead of missing.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from envdoctor.facts import SCHEMA_VERSION, Facts
from envdoctor.findings import Finding, Severity

HOST_VARIABLES = ("SLURMD_NODENAME", "NODE_NAME")  # Slurm's node name; Kubernetes' spec.nodeName


def host_name() -> str:
    """This node's name as the scheduler knows it."""
    for var in HOST_VARIABLES:
        if os.environ.get(var):
            return os.environ[var]
    return socket.gethostname().split(".")[0]


def expand_path(template: Path | str) -> Path:
    return Path(str(template).replace("{host}", host_name()))


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a reader never sees half a node's file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half file behind


def result_document(facts: Facts, findings: list[Finding]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host_name(),
        "facts": facts.to_dict(),
        "findings": [f.to_dict() for f in findings],
    }


def error_document(message: str) -> dict[str, Any]:
    """The file of a node whose check could not run (exit 2): unknown, never healthy."""
    return {"schema_version": SCHEMA_VERSION, "host": host_name(), "error": message}


def write_document(template: Path | str, document: dict[str, Any]) -> Path:
    path = expand_path(template)
    write_atomic(path, json.dumps(document, indent=2) + "\n")
    return path


def health(facts: Facts, findings: list[Finding]) -> tuple[int, str]:
    """Exit code and line for ``check --health``: 0 healthy, 1 broken, 2 unknown.

    The line is ``envdoctor: <id>: <message>`` so that a drain reason built from it names the finding.
    A probe that crashed or timed out makes the node unknown (it never counts as healthy).
    """
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return 1, f"envdoctor: {errors[0].id}: {_one_line(errors[0].message)}{more}"
    if facts.probe_errors:
        probe, error = next(iter(sorted(facts.probe_errors.items())))
        return 2, f"envdoctor: unknown: probe {probe}: {_one_line(error)}"
    return 0, "envdoctor: healthy"


def _one_line(text: str, limit: int = 200) -> str:
    """Drain reasons are one line; keep them short enough for sinfo's REASON column to stay useful."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
