"""`fleet smoke`: the batch script, and the verdict gathered from each node's `smoke-train --json`."""

from __future__ import annotations

import json
import subprocess

from envdoctor.fleet.slurm import Allocation
from envdoctor.fleet.smoke import gather, render_text, sbatch_script


def _node(folder, name, ok=True, step_s=0.010, rank=0, failed=(), checksum="0x1"):
    checks = [{"name": "fp32: loss fell", "ok": ok, "figure": "", "finding": None}]
    checks += [{"name": n, "ok": False, "figure": "", "finding": None} for n in failed]
    result = {
        "environment": {"rank": rank},
        "node": {"local_step_s": step_s, "allreduce_busbw_gbps": 1.5},
        "runs": [{"checksums": [checksum, checksum]}],
    }
    (folder / f"{name}.json").write_text(json.dumps({"ok": ok, "checks": checks, "result": result}))


def test_slow_failed_and_missing_nodes_are_flagged(tmp_path):
    for i, step in enumerate([0.010, 0.011, 0.010, 0.030]):
        _node(tmp_path, f"gpu{i + 1:02d}", step_s=step, rank=i)
    _node(tmp_path, "gpu05", ok=False, failed=["fp32: ranks in sync"], rank=4)
    (tmp_path / "gpu06.json").write_text("")  # the node's smoke-train died before printing
    verdict = gather(tmp_path, expected=7)
    assert not verdict.ok and verdict.slow == ["gpu04"] and verdict.missing == 1
    text = render_text(verdict)
    assert "7 node(s), 6 reported, 4 passed, 1 missing" in text
    assert "gpu04        pass        3     30.0 ms     3.00x    1.50 GB/s" in text
    assert "✗ fp32: ranks in sync" in text and "gpu06        unknown" in text
    assert "Slow nodes (local step > 1.5 x median): gpu04" in text
    assert "--exclude=gpu[04-06]" in text


def test_all_passing_nodes_give_a_passing_verdict(tmp_path):
    for i in range(2):
        _node(tmp_path, f"n{i + 1}", rank=i)
    verdict = gather(tmp_path, expected=2)
    assert verdict.ok and "verdict: every node passed and agrees" in render_text(verdict)


def test_batch_script_is_valid_shell_with_the_job_id_as_rendezvous_id(tmp_path):
    script = sbatch_script(
        Allocation(8, "gpu", "0:20:00"), tmp_path / "out dir", 8, ["envdoctor"], ["--steps", "50"]
    )
    assert (
        "#SBATCH --nodes=8\n#SBATCH --ntasks-per-node=1\n#SBATCH --partition=gpu\n#SBATCH --time=0:20:00"
        in script
    )
    assert (
        '--nproc 8 --nnodes 8 --rdzv-endpoint "$ENVDOCTOR_RDZV_HOST:29500" --rdzv-id "$SLURM_JOB_ID"'
        in script
    )
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def test_nodes_that_end_with_different_weights_do_not_agree(tmp_path):
    _node(tmp_path, "n1", rank=0)
    _node(tmp_path, "n2", rank=1, checksum="0x2")
    verdict = gather(tmp_path, expected=2)
    assert not verdict.agree and not verdict.ok
    assert "parameter checksums differ" in render_text(verdict)
