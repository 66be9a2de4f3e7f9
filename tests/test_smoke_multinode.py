"""Multi-node smoke-train on one machine: two `smoke-train --nnodes 2` processes meet at a c10d rendezvous.

c10d ignores --node-rank, so global rank 0 lands on either "node"; each node must still print its own
verdict, and the verdicts must agree.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task", "local", "--seq-len", "16", "--batch-size", "16", "--min-accuracy", "0", "--steps", "120"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.torch
@pytest.mark.slow
def test_two_nodes_each_print_their_own_passing_verdict(tmp_path):
    pytest.importorskip("torch")
    endpoint = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["--json", "--nproc", "1", "--nnodes", "2", "--rdzv-endpoint", endpoint, "--rdzv-id", "t", *SMALL]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "envdoctor", "smoke-train", *args, "--out", str(tmp_path / f"node{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stdout + stderr[-2000:]
    verdicts = [json.loads(stdout) for stdout, _ in outs]
    assert all(v["ok"] for v in verdicts)
    assert [c["ok"] for c in verdicts[0]["checks"]] == [c["ok"] for c in verdicts[1]["checks"]]
    ranks = sorted(v["result"]["environment"]["rank"] for v in verdicts)
    assert ranks == [0, 1]  # each node's verdict comes from its own first rank
    sums = {v["result"]["runs"][0]["checksums"][0] for v in verdicts}
    assert len(sums) == 1 and all(v["result"]["environment"]["world_size"] == 2 for v in verdicts)
    for v in verdicts:  # what `fleet smoke` compares between nodes
        assert v["result"]["node"]["local_step_s"] > 0 and v["result"]["node"]["allreduce_busbw_gbps"] > 0
