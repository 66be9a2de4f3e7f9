"""What one node writes for the fleet: `check --write` with {host}, and `check --health` for Slurm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cli_helpers import invoke

from envdoctor.facts import load_facts

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
BROKEN = FIXTURES / "h100_torch201_cu117.json"
HEALTHY = FIXTURES / "healthy_h200.json"
SCRIPT = Path(__file__).parents[1] / "envdoctor" / "fleet" / "envdoctor-health.sh"
HEALTH_LINE = re.compile(r"^envdoctor: [a-z0-9-]+: \S.*$")


def test_check_write_expands_host_and_prints_only_the_path(tmp_path):
    result = invoke(
        ["check", "--json", "--facts", str(HEALTHY), "--write", str(tmp_path / "{host}.json")],
        env={"SLURMD_NODENAME": "gpu017"},
    )
    written = tmp_path / "gpu017.json"
    assert result.exit_code == 0 and result.stdout == f"gpu017: wrote {written}\n"
    doc = json.loads(written.read_text())
    assert doc["host"] == "gpu017" and doc["findings"] == []
    assert load_facts(written).nvidia.driver_version == "580.95.05"
    assert not list(tmp_path.glob(".*.tmp"))


def test_check_write_records_a_check_that_could_not_run(tmp_path):
    target = tmp_path / "out" / "{host}.json"
    result = invoke(["check", "--json", "--python", str(tmp_path / "nope"), "--write", str(target)])
    assert result.exit_code == 2 and "no such file" in result.stderr
    (written,) = (tmp_path / "out").glob("*.json")
    assert "no such file" in json.loads(written.read_text())["error"]


def test_health_broken_prints_one_drain_line_and_exits_1():
    result = invoke(["check", "--quick", "--health", "--facts", str(BROKEN)])
    assert result.exit_code == 1
    assert result.stdout.count("\n") == 1 and HEALTH_LINE.match(result.stdout.strip())
    assert result.stdout.startswith("envdoctor: arch-not-in-wheel: torch 2.0.1 has no kernels")


def test_health_unknown_when_a_probe_timed_out_or_the_check_cannot_run(tmp_path):
    facts = load_facts(HEALTHY)
    facts.probe_errors = {"torch": "timed out after 60 s"}
    path = tmp_path / "f.json"
    path.write_text(facts.to_json())
    result = invoke(["check", "--quick", "--health", "--facts", str(path)])
    assert (
        result.exit_code == 2 and result.stdout == "envdoctor: unknown: probe torch: timed out after 60 s\n"
    )
    result = invoke(["check", "--quick", "--health", "--python", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.stdout.startswith("envdoctor: unknown: --python")


def test_health_of_this_machine_is_a_real_verdict():
    result = invoke(["check", "--quick", "--health"])
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 0:
        assert result.stdout == "envdoctor: healthy\n"
    else:
        assert HEALTH_LINE.match(result.stdout)


def _run_script(tmp_path: Path, args: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
    """The wrapper with a recording `scontrol` first on PATH (the real drain runs on the test cluster)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ENVDOCTOR": f"{sys.executable} -m envdoctor",
        "ENVDOCTOR_ARGS": args,
        "ENVDOCTOR_HEALTH_DEFAULTS": str(tmp_path / "none"),
        "SLURMD_NODENAME": "n2",
        **(extra or {}),
    }
    proc = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, calls.read_text() if calls.exists() else ""


def test_wrapper_drains_a_broken_node_with_the_finding_as_reason(tmp_path):
    rc, calls = _run_script(tmp_path, f"--facts {BROKEN}")
    assert rc == 1
    assert calls.splitlines()[:4] == ["update", "nodename=n2", "state=drain", calls.splitlines()[3]]
    assert calls.splitlines()[3].startswith("reason=envdoctor: arch-not-in-wheel: ")


def test_wrapper_leaves_healthy_and_unknown_nodes_alone(tmp_path):
    assert _run_script(tmp_path, f"--facts {HEALTHY}") == (0, "")
    assert _run_script(tmp_path, f"--facts {tmp_path / 'missing.json'}") == (0, "")
    rc, calls = _run_script(
        tmp_path, f"--facts {tmp_path / 'missing.json'}", {"ENVDOCTOR_DRAIN_UNKNOWN": "1"}
    )
    assert rc == 1 and "reason=envdoctor: unknown: " in calls


def test_wrapper_counts_a_hung_check_as_unknown(tmp_path):
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    rc, calls = _run_script(
        tmp_path, "", {"ENVDOCTOR": str(hang), "ENVDOCTOR_TIMEOUT": "1", "ENVDOCTOR_DRAIN_UNKNOWN": "1"}
    )
    assert rc == 1 and "reason=envdoctor: unknown: check took over 1 s" in calls


def test_check_write_to_an_unwritable_place_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke(["check", "--json", "--facts", str(HEALTHY), "--write", str(blocker / "{host}.json")])
    assert result.exit_code == 2 and result.stderr.startswith(f"envdoctor: error: --write {blocker}/")
    assert "Traceback" not in result.output


def test_health_script_is_printed_for_installation():
    result = invoke(["fleet", "health-script"])
    assert result.exit_code == 0 and result.stdout == SCRIPT.read_text()
