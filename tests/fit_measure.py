"""Train the reference model a few steps on CPU and print its measured peak memory as JSON.

Run as a child (``python tests/fit_measure.py '{"n_layer": 4, ...}'``) so that nothing else lives
in the process. Peak memory is measured as ``smoke-train`` measures it on CPU
(:class:`envdoctor.smoke.train.PeakMemory`): growth of the peak resident set (VmHWM) over the
resident size at the start, after one warm-up step of a tiny model has loaded torch's kernels and
thread pools. Two steps run: the second one's forward and backward pass happen with AdamW's moments
(created by the first step) alive.
"""

from __future__ import annotations

import json
import sys

import torch
from torch.utils.checkpoint import checkpoint

from envdoctor.smoke.train import PeakMemory
from reference_model.model import PAMConfig, PAMTransformer


def _steps(cfg: PAMConfig, batch: int, seq: int, steps: int, checkpointing: bool) -> int:
    torch.manual_seed(0)
    model = PAMTransformer(cfg)
    if checkpointing:
        for block in model.blocks:
            block.forward = _checkpointed(block.forward)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    idx = torch.randint(0, cfg.vocab_size, (batch, seq))
    for _ in range(steps):
        _, loss = model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model.num_params()


def _checkpointed(forward):
    return lambda x: checkpoint(forward, x, use_reentrant=False)


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    _steps(PAMConfig(n_layer=1, n_head=2, n_embd=32, attention="full"), 2, 16, 2, spec["checkpointing"])
    cfg = PAMConfig(
        vocab_size=spec["vocab"],
        block_size=spec["seq"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        n_embd=spec["n_embd"],
        attention="full",
    )
    memory = PeakMemory(torch.device("cpu"))
    params = _steps(cfg, spec["batch"], spec["seq"], 2, spec["checkpointing"])
    print(json.dumps({"params": params, "peak_bytes": memory.peak_bytes(), "method": memory.method}))


if __name__ == "__main__":
    main()
