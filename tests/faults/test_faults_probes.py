"""Faults of the interpreter under check: a ``--python`` that never answers."""

from __future__ import annotations

import json

from fault_helpers import Fault, rows_by_test, run_fault

FAULTS = [
    Fault(
        "test_python_target_hangs",
        "--python names a program that never answers (a wrapper stuck in its startup)",
        "ENVDOCTOR_PROBE_TIMEOUT=2 ENVDOCTOR_TORCH_TIMEOUT=2 envdoctor check --python HANG --json",
        "its process group is killed at the probe timeout; probe-failed (error) and torch-import-error",
        1,
        20,
    ),
]
ROW = rows_by_test(FAULTS)


def test_python_target_hangs(tmp_path) -> None:
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")  # a grandchild holds the pipes too
    hang.chmod(0o755)
    env = {"ENVDOCTOR_PROBE_TIMEOUT": "2", "ENVDOCTOR_TORCH_TIMEOUT": "2"}
    ran = run_fault(ROW["test_python_target_hangs"], ["check", "--python", hang, "--json"], env=env)
    findings = {f["id"]: f for f in json.loads(ran.stdout)["findings"]}
    assert findings["probe-failed"]["severity"] == "error"
    assert str(hang) in findings["probe-failed"]["message"]
    assert findings["torch-import-error"]["evidence"]["torch.status"] == "timeout"
