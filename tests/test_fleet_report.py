"""`envdoctor fleet report`: majority baseline, odd nodes, grouped findings, host lists, exit codes."""

from __future__ import annotations

import json

from cli_helpers import invoke
from fleet_helpers import error, fixture, set_driver, write_fleet
from hypothesis import given
from hypothesis import strategies as st

from envdoctor.fleet.hostlist import compress, expand


def test_hostlist_compresses_like_slurm():
    assert compress(["node017", "node042", "node043", "node044"]) == "node[017,042-044]"
    assert compress(["n2", "n1", "n1"]) == "n[1-2]"
    assert compress(["node9", "node10", "login"]) == "login,node[9-10]"
    assert compress(["node099", "node100"]) == "node[099-100]"
    assert compress(["gpu7"]) == "gpu7"
    assert expand("node[017,042-044],login1") == ["node017", "node042", "node043", "node044", "login1"]


@given(st.sets(st.tuples(st.sampled_from(["node", "gpu-a", "x"]), st.integers(0, 300)), max_size=40))
def test_hostlist_round_trips(pairs):
    names = {f"{prefix}{n:03d}" for prefix, n in pairs}
    assert set(expand(compress(names))) == names if names else compress(names) == ""


def test_consistent_healthy_fleet_exits_0(tmp_path):
    write_fleet(tmp_path, 4)
    result = invoke(["fleet", "report", str(tmp_path), "--expect", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("envdoctor fleet: 4 expected, 4 reported: consistent and healthy")
    assert "✓ driver branch        580: 4/4" in result.stdout and "--exclude" not in result.stdout


def test_odd_nodes_findings_exclude_and_drain(tmp_path):
    odd = {17: set_driver("550.54.15"), 42: set_driver("550.54.15")}
    broken = {n: [error("nccl-missing", "NCCL not found")] for n in (43, 44)}
    write_fleet(tmp_path, 64, odd=odd, findings=broken)
    result = invoke(["fleet", "report", str(tmp_path), "--expect", "node[001-065]"])
    out = result.stdout
    assert result.exit_code == 1
    assert out.splitlines()[0] == (
        "envdoctor fleet: 65 expected, 64 reported, 1 missing, 2 broken, 2 odd: 5 node(s) need attention"
    )
    assert "✗ driver branch        580: 62/64  (others 550: 2)" in out
    assert "node017: driver branch 550 (majority 580)" in out
    assert "nccl-missing  node[043-044] (2)" in out
    assert "Missing nodes: node065" in out
    assert "--exclude=node[017,042-044,065]" in out
    assert 'scontrol update nodename=node[043-044] state=drain reason="envdoctor: nccl-missing"' in out
    assert 'nodename=node[017,042] state=drain reason="envdoctor: drift: driver branch"' in out
    data = json.loads(invoke(["fleet", "report", "--json", str(tmp_path), "--expect", "65"]).stdout)
    baseline = data["groups"][0]["baseline"]["driver branch"]
    assert baseline == {"majority": "580", "counts": {"580": 62, "550": 2}, "total": 64}
    assert data["findings"] == [
        {"id": "nccl-missing", "message": "NCCL not found", "nodes": "node[043-044]", "count": 2}
    ]
    assert data["missing_count"] == 1 and data["exclude"] == "node[017,042-044]"


def test_unknown_nodes_never_count_as_healthy(tmp_path):
    write_fleet(tmp_path, 3)
    (tmp_path / "node004.json").write_text('{"schema_version": 1, "host": "node004", "error": "no python"}')
    (tmp_path / "node005.json").write_text("{trunc")
    timed_out = fixture("healthy_h200")
    timed_out["probe_errors"] = {"torch": "timed out after 60 s"}
    (tmp_path / "node006.json").write_text(json.dumps({"facts": timed_out, "findings": []}))
    result = invoke(["fleet", "report", str(tmp_path)])
    assert result.exit_code == 1
    assert "node004: check failed: no python" in result.stdout
    assert "node005: unreadable: not valid JSON" in result.stdout
    assert "node006: probe torch: timed out after 60 s" in result.stdout
    assert "drain" not in result.stdout.lower().split("keep them out")[1]


def test_no_majority_is_said_and_group_by_splits_a_mixed_fleet(tmp_path):
    write_fleet(tmp_path, 4, odd={3: set_driver("550.1"), 4: set_driver("550.1")})
    result = invoke(["fleet", "report", str(tmp_path)])
    assert result.exit_code == 1
    assert "✗ driver branch        no majority (550: 2, 580: 2)" in result.stdout
    assert "drain" not in result.stdout
    grouped = invoke(["fleet", "report", str(tmp_path), "--group-by", "driver-branch"])
    assert grouped.exit_code == 0, grouped.output
    assert "driver branch = 550: baseline of 2 node(s) (node[003-004])" in grouped.stdout


def test_mixed_gpu_fleet_odd_node_against_a_recorded_fixture(tmp_path):
    write_fleet(tmp_path, 5)
    (tmp_path / "node006.json").write_text(json.dumps({"facts": fixture("v100_torch211_cu128")}))
    out = invoke(["fleet", "report", str(tmp_path)]).stdout
    assert "node006: torch version" in out and "GPU model Tesla V100" in out


def test_unreadable_input_exits_2(tmp_path):
    missing = invoke(["fleet", "report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    empty = invoke(["fleet", "report", str(tmp_path)])
    assert empty.exit_code == 2 and "no *.json node results" in empty.stderr
    bad = invoke(["fleet", "report", str(tmp_path), "--group-by", "colour"])
    assert bad.exit_code == 2 and "gpu-model" in bad.stderr
    assert invoke(["fleet", "report", str(tmp_path), "--expect", "node[1-"]).exit_code == 2


def test_fleet_commands_without_slurm_or_a_subcommand_exit_2(tmp_path):
    assert invoke(["fleet"]).exit_code == 2
    no_slurm = invoke(
        ["fleet", "run", "--slurm", "-N", "2", "--out", str(tmp_path / "o")], env={"PATH": "/nonexistent"}
    )
    assert no_slurm.exit_code == 2 and "srun not found" in no_slurm.stderr
    assert invoke(["fleet", "run", "-N", "2", "--out", str(tmp_path / "o")]).exit_code == 2  # --slurm missing
    write_fleet(tmp_path / "full", 1)
    again = invoke(["fleet", "run", "--slurm", "-N", "1", "--out", str(tmp_path / "full")])
    assert again.exit_code == 2 and "already holds node results" in again.stderr
    (tmp_path / "file").write_text("")
    blocked = invoke(["fleet", "smoke", "--slurm", "-N", "2", "--out", str(tmp_path / "file" / "o")])
    assert blocked.exit_code == 2 and blocked.stderr.startswith("envdoctor: error: --out ")
    dry = invoke(
        ["fleet", "smoke", "--slurm", "-N", "2", "--nproc", "4", "--out", str(tmp_path / "s"), "--dry-run"]
    )
    assert dry.exit_code == 0 and dry.stdout.startswith("#!/bin/sh\n#SBATCH --nodes=2")


def test_fleet_run_stops_a_hung_srun_and_reports_whoever_wrote(tmp_path):
    """A step that never ends (a hung node): srun and its children are stopped at --timeout."""
    import os
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "out"
    write_fleet(tmp_path / "one", 1)
    # The stand-in writes one node's result, then hangs like a step waiting on a dead node.
    (bin_dir / "srun").write_text(f"#!/bin/sh\ncp {tmp_path}/one/node001.json {out}/\nsleep 300 &\nwait\n")
    (bin_dir / "srun").chmod(0o755)
    start = time.monotonic()
    result = invoke(
        ["fleet", "run", "--slurm", "-N", "2", "--out", str(out), "--timeout", "2"],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert time.monotonic() - start < 30
    assert result.exit_code == 1 and "srun stopped after 2 s" in result.stderr
    assert result.stdout.startswith("envdoctor fleet: 2 expected, 1 reported, 1 missing")
