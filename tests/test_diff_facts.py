"""`envdoctor diff`: breaking differences for multi-node training, noise ignored, exit codes."""

from __future__ import annotations

import copy
import json

from cli_helpers import invoke

from envdoctor.diff import breaking, compare
from envdoctor.facts import Facts, Gpu


def _node() -> Facts:
    f = Facts()
    f.torch.status, f.torch.version, f.torch.cuda, f.torch.nccl_version = (
        "ok",
        "2.7.1+cu128",
        "12.8",
        "2.26.2",
    )
    f.nvidia.driver_version, f.nvidia.cuda_driver_version = "570.124.06", "12.8"
    f.nvidia.gpus = [Gpu(0, "NVIDIA H100 80GB HBM3", "9.0")]
    f.python.version, f.python.executable = "3.11.9", "/opt/venv/bin/python"
    f.system.env = {"NCCL_IB_HCA": "mlx5", "SLURM_NODEID": "0", "HOSTNAME": "node001"}
    f.packages.versions = {"torch": "2.7.1+cu128", "transformers": "4.51.0"}
    f.timings = {"torch": 1.2}
    return f


def test_identical_nodes_up_to_noise_do_not_differ():
    a, b = _node(), _node()
    b.python.executable, b.timings = "/home/x/venv/bin/python", {"torch": 3.4}
    b.system.env = {**a.system.env, "SLURM_NODEID": "7", "HOSTNAME": "node064"}
    assert compare(a, b) == []


def test_torch_nccl_driver_branch_and_python_minor_break():
    a = _node()
    for mutate, label in [
        (lambda f: setattr(f.torch, "version", "2.7.0+cu128"), "torch version"),
        (lambda f: setattr(f.torch, "nccl_version", "2.21.5"), "NCCL"),
        (lambda f: setattr(f.nvidia, "driver_version", "550.54.15"), "driver branch"),
        (lambda f: setattr(f.python, "version", "3.10.14"), "python minor"),
    ]:
        b = copy.deepcopy(a)
        mutate(b)
        diffs = compare(a, b)
        assert breaking(diffs) and any(d.path == label and d.breaking for d in diffs), label


def test_same_driver_branch_and_library_versions_are_listed_but_not_breaking():
    a, b = _node(), _node()
    b.nvidia.driver_version = "570.172.08"
    b.packages.versions = {**a.packages.versions, "transformers": "4.52.0"}
    diffs = compare(a, b)
    assert not breaking(diffs)
    assert {d.path for d in diffs} == {"nvidia.driver_version", "packages.versions.transformers"}


def test_cli_diff_several_nodes_json_and_unreadable_input(tmp_path):
    ref, same, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    ref.write_text(_node().to_json())
    same.write_text(_node().to_json())
    changed = _node()
    changed.torch.cuda = "12.6"
    other.write_text(json.dumps({"schema_version": 1, "facts": changed.to_dict(), "findings": []}))
    result = invoke(["diff", str(ref), str(same)])
    assert result.exit_code == 0 and "1 snapshot(s) match" in result.stdout
    result = invoke(["diff", "--json", str(ref), str(same), str(other)])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)["results"]
    assert [r["breaking"] for r in rows] == [False, True]
    (tmp_path / "bad.json").write_text("{not json")
    result = invoke(["diff", str(ref), str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_torch_missing_on_one_side_breaks_and_reads_not_installed():
    a, b = _node(), _node()
    b.torch = type(b.torch)(status="missing", error="No module named 'torch'")
    b.packages.versions = {"transformers": "4.51.0"}
    diffs = compare(a, b)
    torch_row = next(d for d in diffs if d.path == "torch version")
    assert torch_row.breaking and torch_row.b == "not installed"
    result_lines = render_lines(a, b)
    assert "✗ torch version: 2.7.1+cu128 -> not installed" in result_lines


def test_cuda_available_lost_and_device_count_changed_break():
    a = _node()
    a.torch.cuda_available, a.torch.device_count = True, 8
    for mutate, label in [
        (lambda f: setattr(f.torch, "cuda_available", False), "CUDA available"),
        (lambda f: setattr(f.torch, "device_count", 7), "GPU count"),
        (lambda f: setattr(f.nvidia, "gpus", [Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")]), "GPU model"),
    ]:
        b = copy.deepcopy(a)
        mutate(b)
        assert any(d.path == label and d.breaking for d in compare(a, b)), label


def test_known_against_unknown_on_a_breaking_key_breaks():
    a, b = _node(), _node()
    b.torch.nccl_version = None
    diffs = compare(a, b)
    assert [d.path for d in diffs if d.breaking] == ["NCCL"]
    assert "✗ NCCL: 2.26.2 -> unknown" in render_lines(a, b)


def test_breaking_keys_lead_and_packages_only_with_verbose(tmp_path):
    a, b = _node(), _node()
    a.packages.all = {f"pkg{i}": "1.0" for i in range(100)}
    b.packages.all = {f"pkg{i}": "1.1" for i in range(100)} | {"extra": "2.0"}
    b.torch.version = "2.7.0+cu128"
    ra, rb = tmp_path / "a.json", tmp_path / "b.json"
    ra.write_text(a.to_json())
    rb.write_text(b.to_json())
    result = invoke(["diff", str(ra), str(rb)])
    lines = result.stdout.splitlines()
    assert result.exit_code == 1 and len(lines) < 10
    assert lines[1].startswith("  ✗ torch version")
    assert "101 package version(s) differ (-v lists them)" in result.stdout
    verbose = invoke(["diff", "-v", str(ra), str(rb)]).stdout
    assert "· packages.all.extra: not installed -> 2.0" in verbose and "pkg99: 1.0 -> 1.1" in verbose


def render_lines(a: Facts, b: Facts) -> str:
    from envdoctor.diff import render

    return render([("b", compare(a, b))], "a")


def test_diff_real_checks_of_a_venv_without_torch(tmp_path):
    """Two real `check --json` runs: this interpreter (torch installed) and a fresh venv without torch."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    with_torch, without = tmp_path / "a.json", tmp_path / "b.json"
    with_torch.write_text(invoke(["check", "--json"]).stdout)
    without.write_text(invoke(["check", "--json", "--python", str(tmp_path / "bare/bin/python")]).stdout)
    result = invoke(["diff", str(with_torch), str(without)])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  ✗ torch version: 2.") and lines[1].endswith(
        "-> not installed  [torch build]"
    )
    assert len(lines) < 12 and "torch.arch_list" not in result.stdout


def test_quick_check_without_any_torch_distribution_reads_not_installed():
    a, b = _node(), Facts()
    b.torch.status, b.packages.torch_installs = "skipped", []
    row = next(d for d in compare(a, b) if d.path == "torch version")
    assert row.b == "not installed"
