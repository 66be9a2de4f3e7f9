"""A small decoder-only transformer whose attention is PAM, the progressive attention mechanism.

PAM mixes, per query and head, attention branches that go from coarse to fine:

1. **Global, coarse.** Keys and values are compressed per block of ``compress_block`` tokens (the
   module mean-pools them; the operator takes any compressed keys and values as inputs) and every
   query attends causally to the compressed blocks. A query may only see a block that is
   *complete in its past* (last position of the block <= query position), so nothing from the future
   leaks through a pooled mean. Queries with no complete past block (the first ``b - 1`` positions)
   still have a learned **null key/value** (one per head) to attend to: the softmax is never empty and
   the model can learn to route "nothing to see yet" to it. Cost ``n * (n / b + 1)``, not ``n^2``.
2. **Selected, fine.** (``select_blocks`` = k > 0) The query's own scores against the compressed
   keys choose its top-k complete past blocks, and the query attends to every token of those blocks
   at full resolution (plus the null slot), as in DeepSeek's Native Sparse Attention. A mean-pooled
   block can say *where* an answer is; only the block's own tokens can say *what* it is. Cost
   ``n * k * b``, as per-query work (not matrix products: a choice shared by several queries
   would make one query's output depend on another's, a later one's included): compiled C on a CPU
   in fp32/fp64 (:mod:`reference_model.select_kernel`), else read through ``embedding_bag``; neither
   copies any query's keys. The choice (top-k) is not differentiable; the attention within it is.
3. **Local, fine.** Exact causal sliding-window attention: query ``t`` sees keys ``t - w + 1 .. t``.
   Queries go in spans of ``w`` tokens, each against the previous span and its own (``2w`` keys), so
   the cost is ``n * 2 * w`` and no ``n x n`` matrix ever exists. With ``stages=5`` there are three
   local branches with windows ``w, w/2, w/4`` (rounded, at least 1).
4. **Fusion.** A gate computed from the layer's input at the query's position: per head, one logit
   per branch (a linear layer), softmax over the branches, output = the weighted sum of the branch
   outputs. Without a selected branch the bias starts at ``GATE_BIAS`` for the (widest) local branch
   and 0 for the others, so a fresh model starts as exact local attention; with one, the compressed,
   selected and widest local branches start even (the compressed scores also choose the selected
   blocks, and top-k passes no gradient, so they learn only through their own branch). The gates
   are drawn after every other weight: PAM and full attention built with the same seed share all
   their other initial weights.

**The operator** (``pam_attention``) computes every branch and the fusion chunk by chunk of
``T / 16`` queries (64 to 256; more, up to 512, for narrow queries) and keeps no branch output:
forward saves only its inputs (and the selected blocks' indices), backward recomputes each chunk
under autograd (the selected branch by hand) and adds its gradients into the full ones. Its peak memory is inputs, output, gradients and one chunk's
scores, linear in ``n``, with or without the selected branch.

The write-up's gate was ``sigmoid(<q, step_embed[step]>)``: one embedding row per training step,
each trained once and never used again, and evaluation ran at an untrained row (a constant ~0.5
mix). Its local window also grew with the step from 4 tokens, which starved the first quarter of
training. Both are gone: nothing in the model depends on the training step.

``attention="full"`` is plain causal attention (the baseline); ``attention="pam_naive"`` is the same
PAM maths written with materialised ``n x n`` scores masked with ``-inf`` (for tests and benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import select_kernel

ATTENTIONS = ("pam", "full", "pam_naive")
# Initial gate logit of the widest local branch, and of the compressed and selected branches when
# there is a selected one; the others start at 0. Without selection: 98 % local (3 stages), so that
# where the window holds the answer PAM starts as exact attention (add, 3 seeds: 99.0 % vs 95.6 %
# with 2.0, full attention 98.6 %); with it, an even start (1/3 each): on recall at 64 tokens a
# compressed branch started at 6 % left PAM at 71 % where the even start reached 82 % (seed 0).
GATE_BIAS = 4.0


@dataclass
class PAMConfig:
    vocab_size: int = 32
    block_size: int = 128  # longest sequence the position table covers
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    attention: str = "pam"  # "pam" | "full" | "pam_naive"
    stages: int = 3  # 3: one local window; 5: three local windows w, w/2, w/4
    compress_block: int = 8  # b: tokens pooled into one global key/value, and the selection unit
    select_blocks: int = 2  # k: blocks each query attends to at full resolution (0: no selected branch)
    window: int = 16  # local window, also the chunk size of the blockwise local attention

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {self.attention!r}")
        if self.stages not in (3, 5):
            raise ValueError(f"stages must be 3 or 5, not {self.stages}")
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be divisible by n_head")
        if self.window < 1 or self.compress_block < 1 or self.select_blocks < 0:
            raise ValueError("need window >= 1, compress_block >= 1, select_blocks >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_branches(self) -> int:
        return 1 + (self.select_blocks > 0) + len(local_windows(self))


def local_windows(cfg: PAMConfig) -> list[int]:
    """Windows of the local branches: one for 3 stages, ``w, w/2, w/4`` for 5 stages."""
    w = cfg.window
    if cfg.stages == 3:
        return [w]
    return [w, max(1, round(w / 2)), max(1, round(w / 4))]


# ----------------------------------------------------------------------------- the PAM operator

QUERY_CHUNK = 512  # most queries per chunk: fewer, larger chunks spend less time in Python
MIN_QUERY_CHUNK = 64  # chunks are T / 16 queries, 64 to 256: a chunk's transient memory stays small
CHUNK_FLOATS = 1 << 15  # ... or more queries, up to QUERY_CHUNK, when a chunk's q has fewer floats
SELECT_PAIRS = 1 << 14  # most (query, key) pairs of the selected branch at once: its transient memory


def compress_mean(k, v, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values mean-pooled over each complete block of ``block`` tokens: (B, H, T // block, D)."""
    B, H, T, D = k.shape
    nb = T // block

    def pool(x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : nb * block].reshape(B, H, nb, block, D).mean(3)

    return pool(k), pool(v)


def _complete_past_blocks(t0: int, n: int, nb: int, block: int, device) -> torch.Tensor:
    """(n, nb) bool for queries t0 .. t0 + n - 1: block j lies entirely in the query's past."""
    pos = torch.arange(t0, t0 + n, device=device)
    block_end = torch.arange(nb, device=device) * block + block - 1
    return block_end[None, :] <= pos[:, None]


def _softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, computed in fp32 at least (bf16/fp16 inputs)."""
    return x.softmax(-1, dtype=torch.promote_types(x.dtype, torch.float32)).to(x.dtype)


def _with_null(scores, null_score):
    """Softmax over the null slot's score followed by ``scores``."""
    return _softmax(torch.cat([null_score, scores], dim=-1))


def fuse(branches: list[torch.Tensor], gate_logits: torch.Tensor) -> torch.Tensor:
    """Softmax gate over branches: gate_logits (B, H, T, n_branches), branches (B, H, T, D) each."""
    weights = _softmax(gate_logits).to(branches[0].dtype)
    return cast(torch.Tensor, sum(weights[..., i : i + 1] * b for i, b in enumerate(branches)))


def _chunk_spans(q, cfg: PAMConfig):
    """(t0, t1, lo, nbv) per chunk of queries t0 .. t1 - 1 of q (B, H, T, D): its local keys start at
    ``lo`` and only its first ``nbv`` compressed blocks can be complete in the past of one of its
    queries. Narrow queries (few heads, small heads) go in larger chunks: there a chunk's operations
    cost more in dispatch than in arithmetic (smoke-train's model at 4K: 97 vs 121 ms a layer)."""
    B, H, T, D = q.shape
    by_length = max(MIN_QUERY_CHUNK, min(QUERY_CHUNK // 2, T // 16))
    span, chunk = max(local_windows(cfg)), min(QUERY_CHUNK, max(by_length, CHUNK_FLOATS // (B * H * D)))
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        yield t0, t1, max(0, t0 - span), t1 // cfg.compress_block


def _local_branches(t0: int, q, kl, vl, windows: list[int]) -> list[torch.Tensor]:
    """Sliding-window attention for queries t0 .. t0 + C, one output per window.

    The queries go in spans of S = the widest window, each against the previous span and its own
    (2S keys, which hold every window of the span's queries), as one batched product over the spans.
    ``kl, vl`` hold the keys from ``max(0, t0 - S)`` to the chunk's end.
    """
    B, H, C, D = q.shape
    S = max(windows)
    n = -(-C // S)
    front, back = S - (t0 - (t0 + C - kl.shape[2])), n * S - C  # missing keys before 0, queries after C

    def spans(x):  # (B, H, n, 2S, D): span m holds keys t0 + (m - 1) S .. t0 + (m + 1) S - 1
        return F.pad(x, (0, 0, front, back)).unfold(2, 2 * S, S).transpose(-1, -2)

    kk, vv = (spans(x).reshape(B, H * n, 2 * S, D) for x in (kl, vl))
    qq = F.pad(q, (0, 0, 0, back)).reshape(B, H * n, S, D)
    i, j = torch.arange(S, device=q.device)[:, None], torch.arange(2 * S, device=q.device)
    dist = i + S - j  # query position minus key position, the same in every span
    exists = (t0 + (torch.arange(n, device=q.device) - 1) * S)[:, None, None] + j >= 0  # no key before 0
    outs = []
    for w in windows:  # a 4-D mask (one per span and head): the CPU flash kernel accepts it
        keep = ((dist >= 0) & (dist < w) & exists).expand(H, n, S, 2 * S).reshape(1, H * n, S, 2 * S)
        out = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=keep)
        outs.append(out.reshape(B, H, n * S, D)[:, :, :C])
    return outs


def _pam_chunk(t0, q, kl, vl, kc, vc, null_k, null_v, gate, cfg: PAMConfig, selected=None):
    """PAM's fused output for queries t0 .. t0 + len(q) (all (B, H, n, D)), branch by branch.

    ``kl, vl``: the keys and values from ``t0 - w`` (w: the widest window) to the chunk's end;
    ``kc, vc``: the compressed blocks that may be visible; ``selected``: the selected branch's output
    (:class:`_SelectedBranch`), None without one.
    """
    B, H, C, D = q.shape
    dtype = q.dtype
    visible = _complete_past_blocks(t0, C, kc.shape[2], cfg.compress_block, q.device)
    kcn, vcn = (
        torch.cat([n.to(dtype)[None, :, None].expand(B, H, 1, D), x.to(dtype)], 2)
        for n, x in ((null_k, kc), (null_v, vc))
    )
    mask = torch.cat([torch.ones(C, 1, dtype=torch.bool, device=q.device), visible], dim=1)
    branches = [F.scaled_dot_product_attention(q, kcn, vcn, attn_mask=mask)]
    branches += [] if selected is None else [selected]
    branches += _local_branches(t0, q, kl.to(dtype), vl.to(dtype), local_windows(cfg))
    return fuse(branches, gate)


def _choose_blocks(t0: int, q, kc, cfg: PAMConfig) -> torch.Tensor:
    """(B, H, C, k): each query's top-k blocks by its scores against the compressed keys (visible
    ones first: with fewer than k visible, the rest are invisible blocks, masked later)."""
    B, H, C, _ = q.shape
    top = min(cfg.select_blocks, kc.shape[2])
    with torch.no_grad():
        coarse = q @ kc.to(q.dtype).transpose(-1, -2)
        kernel = select_kernel.functions(coarse.dtype, coarse.device)
        if kernel is not None:  # one pass over each query's visible blocks, no mask
            chosen = torch.empty(B, H, C, top, dtype=torch.long, device=q.device)
            coarse = coarse.contiguous()
            kernel.choose(
                B * H, C, kc.shape[2], top, cfg.compress_block, t0, coarse.data_ptr(), chosen.data_ptr()
            )
            return chosen
        first = (t0 + 1) // cfg.compress_block  # the blocks before it are complete for every query here
        visible = _complete_past_blocks(t0, C, kc.shape[2], cfg.compress_block, q.device)
        coarse[..., first:].masked_fill_(~visible[:, first:], float("-inf"))
        return coarse.topk(top, dim=-1).indices


def _tables(k, v, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values as (B * H * T, D) tables (row ``bh * T + t``) for the selected branch: a view
    of contiguous inputs, a copy otherwise."""
    return k.to(dtype).reshape(-1, k.shape[-1]), v.to(dtype).reshape(-1, v.shape[-1])


class _SelectedBranch:
    """The selected branch for queries t0 .. t0 + C, with no per-query copy of its keys and values.

    Each query's k * b keys are one bag of ``F.embedding_bag`` over the key and value tables: its
    scores are the bag's per-sample dot products (embedding_bag's per-sample-weight gradient), its
    output the bag's rows summed with its probabilities. Every query is computed on its own keys (no
    float of its output depends on another query: causality holds bit for bit) and no tensor of
    ``C * k * b * D`` floats exists. Backward adds the tables' gradients in place (``addmm_`` of a
    sparse key x query matrix). Queries go in pieces of at most ``SELECT_PAIRS`` (query, key) pairs.
    """

    def __init__(self, t0, q, k_tab, v_tab, nbv: int, chosen, null_k, null_v, cfg: PAMConfig) -> None:
        B, H, C, D = q.shape
        self.q, self.k_tab, self.v_tab, self.chosen, self.block = q, k_tab, v_tab, chosen, cfg.compress_block
        self.scale, self.null_k, self.null_v = 1 / math.sqrt(D), null_k.to(q.dtype), null_v.to(q.dtype)
        self.visible = _complete_past_blocks(t0, C, nbv, self.block, q.device).expand(B, H, C, -1)
        self.heads = torch.arange(B * H, device=q.device).view(B, H, 1, 1) * (k_tab.shape[0] // (B * H))
        self.step = max(1, SELECT_PAIRS // (B * H * max(1, chosen.shape[-1] * self.block)))

    def _pieces(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per piece of queries: its slice, (2, pairs) (key row, the query's row in the piece), each
        query's first pair (the bags' offsets) and which pairs lie in a complete past block."""
        B, H, C, top = self.chosen.shape
        n, device = top * self.block, self.q.device
        for s0 in range(0, C, self.step):
            s = slice(s0, min(C, s0 + self.step))
            chosen = self.chosen[:, :, s]
            keys = (self.heads + chosen * self.block)[..., None] + torch.arange(self.block, device=device)
            valid = self.visible[:, :, s].gather(-1, chosen).repeat_interleave(self.block, dim=-1)
            bags = torch.arange(B * H * (s.stop - s0), device=device)
            yield s, torch.stack([keys.reshape(-1), bags.repeat_interleave(n)]), bags * n, valid

    def _probs(self, s: slice, pairs, offsets, valid) -> torch.Tensor:
        """(B, H, c, 1 + k * b): softmax over the null slot and the piece's selected keys."""
        q = self.q[:, :, s]
        B, H, c, D = q.shape
        dots = self._dots(q, self.k_tab, pairs, offsets)
        scores = (dots.view(B, H, c, -1) * self.scale).masked_fill(~valid, float("-inf"))
        return _with_null(scores, (q @ self.null_k[:, :, None]) * self.scale)

    @staticmethod
    def _dots(rows, table, pairs, offsets) -> torch.Tensor:
        """Per pair: the dot product of its query's row of ``rows`` (B, H, c, D) and its key's table row."""
        return torch.ops.aten._embedding_bag_per_sample_weights_backward(
            rows.reshape(-1, rows.shape[-1]), table, pairs[0], offsets, pairs[1], 0
        )

    def _bag_sum(self, table, pairs, offsets, weights, shape) -> torch.Tensor:
        out = F.embedding_bag(pairs[0], table, offsets, mode="sum", per_sample_weights=weights.reshape(-1))
        return out.view(shape)

    def forward(self) -> torch.Tensor:
        """The branch's output; keeps each piece's probabilities (C * H * (k * b + 1) floats) for backward."""
        out = torch.empty_like(self.q, memory_format=torch.contiguous_format)
        self.probs = []
        for s, pairs, offsets, valid in self._pieces():
            probs = self._probs(s, pairs, offsets, valid)
            self.probs.append(probs)
            fine = self._bag_sum(self.v_tab, pairs, offsets, probs[..., 1:], out[:, :, s].shape)
            out[:, :, s] = fine + probs[..., :1] * self.null_v[:, None, :]
        return out

    def backward(self, dout, dq, dk_tab, dv_tab, dnull_k, dnull_v) -> None:
        """Add the branch's gradients (``dout``: its output's) into the full-size ones given (after
        :meth:`forward`)."""
        for (s, pairs, offsets, _), probs in zip(self._pieces(), self.probs, strict=True):
            q, do = self.q[:, :, s], dout[:, :, s]
            B, H, c, D = q.shape
            dfine = self._dots(do, self.v_tab, pairs, offsets)
            null_dot = (do * self.null_v[:, None, :]).sum(-1, keepdim=True)
            dprobs = torch.cat([null_dot, dfine.view(B, H, c, -1)], dim=-1)
            dscores = probs * (dprobs - (probs * dprobs).sum(-1, keepdim=True)) * self.scale
            dq[:, :, s] += self._bag_sum(self.k_tab, pairs, offsets, dscores[..., 1:], q.shape)
            dq[:, :, s] += dscores[..., :1] * self.null_k[:, None, :]
            dnull_k += (dscores[..., :1] * q).sum((0, 2))
            dnull_v += (probs[..., :1] * do).sum((0, 2))
            size = (dk_tab.shape[0], B * H * c)
            for full, weights, rows in ((dk_tab, dscores, q), (dv_tab, probs, do)):
                by_key = torch.sparse_coo_tensor(
                    pairs, weights[..., 1:].reshape(-1), size, check_invariants=False
                )
                full.addmm_(by_key, rows.reshape(-1, D))


class _CompiledSelectedBranch:
    """The selected branch of :class:`_SelectedBranch`, in compiled C (``select_kernel.c``): one pass
    per query over its k * b keys in forward and one in backward, each query on its own keys."""

    def __init__(self, kernel, t0, q, k_tab, v_tab, chosen, null_k, null_v, cfg: PAMConfig) -> None:
        B, H, C, D = q.shape
        self.kernel = kernel
        self.q, self.chosen = q.contiguous(), chosen.contiguous()
        self.tensors = [self.q, k_tab, v_tab, self.chosen, null_k.to(q.dtype), null_v.to(q.dtype)]
        top, block = chosen.shape[-1], cfg.compress_block
        self.sizes = (B * H, H, C, D, k_tab.shape[0] // (B * H), top, block, t0, 1 / math.sqrt(D))
        self.scratch = q.new_empty(2 * (1 + top * block))

    def _call(self, fn, *outputs: torch.Tensor) -> None:
        tensors = [*self.tensors, *outputs, self.scratch]
        floats = [x for x in tensors if x is not self.chosen]
        # the C code reads rows by offset, as one float type; chosen is int64
        if not all(x.is_contiguous() for x in tensors) or {x.dtype for x in floats} != {self.q.dtype}:
            raise ValueError("the compiled selected branch needs contiguous tensors of q's dtype")
        if self.chosen.dtype != torch.int64:
            raise ValueError("the compiled selected branch needs int64 block indices")
        fn(*self.sizes, *(x.data_ptr() for x in tensors))

    def forward(self) -> torch.Tensor:
        out = torch.empty_like(self.q)
        self._call(self.kernel.forward, out)
        return out

    def backward(self, dout, dq, dk_tab, dv_tab, dnull_k, dnull_v) -> None:
        dq_chunk = torch.zeros_like(self.q)
        self._call(self.kernel.backward, dout.contiguous(), dq_chunk, dk_tab, dv_tab, dnull_k, dnull_v)
        dq += dq_chunk


def _selected_branch(t0, q, k_tab, v_tab, nbv: int, chosen, null_k, null_v, cfg: PAMConfig):
    """The selected branch for one chunk: compiled where :mod:`select_kernel` serves the dtype and
    device, in PyTorch operations otherwise."""
    kernel = select_kernel.functions(q.dtype, q.device)
    if kernel is None:
        return _SelectedBranch(t0, q, k_tab, v_tab, nbv, chosen, null_k, null_v, cfg)
    return _CompiledSelectedBranch(kernel, t0, q, k_tab, v_tab, chosen, null_k, null_v, cfg)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the operator's small CPU operations on one thread (then restore the count).

    Each of its thousands of small operations is a parallel region; with a second OpenMP thread that
    sleeps between them (smoke-train's PASSIVE policy), every region waits for that thread to be
    scheduled, and on a busy machine a 4K-token step took 2.7-24 s instead of 0.4-0.5 s on one.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _PAMOperator(torch.autograd.Function):
    """All branches and their fusion, chunk by chunk of queries, keeping no branch output.

    Forward keeps only its inputs (and each chunk's selected blocks); backward recomputes each chunk
    with autograd (the selected branch by hand, :class:`_SelectedBranch`) and adds its gradients into
    full-size ones. Peak memory: inputs, output, gradients and one chunk's scores.
    """

    @staticmethod
    def forward(ctx, q, k, v, kc, vc, null_k, null_v, gate, cfg: PAMConfig):
        ctx.cfg = cfg
        ctx.save_for_backward(q, k, v, kc, vc, null_k, null_v, gate)
        ctx.picks = []  # each chunk's selected blocks (int32): backward reuses them, no top-k again
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        tables = _tables(k, v, q.dtype) if cfg.select_blocks else None
        with torch.autocast(q.device.type, enabled=False), _one_cpu_thread(q.device):
            for t0, t1, lo, nbv in _chunk_spans(q, cfg):
                s = slice(t0, t1)
                selected = None
                if tables is not None:
                    chosen = _choose_blocks(t0, q[:, :, s], kc[:, :, :nbv], cfg)
                    ctx.picks.append(chosen.to(torch.int32))
                    branch = _selected_branch(t0, q[:, :, s], *tables, nbv, chosen, null_k, null_v, cfg)
                    selected = branch.forward()
                out[:, :, s] = _pam_chunk(
                    t0, q[:, :, s], k[:, :, lo:t1], v[:, :, lo:t1], kc[:, :, :nbv], vc[:, :, :nbv],
                    null_k, null_v, gate[:, :, s], cfg, selected,
                )  # fmt: skip
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        cfg: PAMConfig = ctx.cfg
        q, k, v, kc, vc, null_k, null_v, gate = ctx.saved_tensors
        grads = [torch.zeros(x.shape, dtype=x.dtype, device=x.device) for x in ctx.saved_tensors]
        dq, dk, dv, dkc, dvc, dnull_k, dnull_v, dgate = grads
        tables = _tables(k, v, q.dtype) if cfg.select_blocks else None
        picks = ctx.picks or [None] * len(list(_chunk_spans(q, cfg)))
        with _one_cpu_thread(q.device), torch.autocast(q.device.type, enabled=False):
            for (t0, t1, lo, nbv), chosen in zip(_chunk_spans(q, cfg), picks, strict=True):
                s = slice(t0, t1)
                parts = [q[:, :, s], k[:, :, lo:t1], v[:, :, lo:t1], kc[:, :, :nbv], vc[:, :, :nbv]]
                leaves = [x.detach().requires_grad_() for x in (*parts, null_k, null_v, gate[:, :, s])]
                branch = selected = None
                if tables is not None:
                    branch = _selected_branch(
                        t0, q[:, :, s], *tables, nbv, chosen.long(), null_k, null_v, cfg
                    )
                    selected = branch.forward().requires_grad_()
                with torch.enable_grad():
                    out = _pam_chunk(t0, *leaves, cfg, selected)
                found = torch.autograd.grad(
                    out, leaves + ([] if selected is None else [selected]), dout[:, :, s]
                )
                targets = [dq[:, :, s], dk[:, :, lo:t1], dv[:, :, lo:t1], dkc[:, :, :nbv], dvc[:, :, :nbv]]
                for target, grad in zip([*targets, dnull_k, dnull_v, dgate[:, :, s]], found, strict=False):
                    target += grad  # views of the full gradients: the chunk's share lands in place
                if branch is not None:
                    dk_tab, dv_tab = (x.view(-1, x.shape[-1]) for x in (dk, dv))
                    branch.backward(found[8], dq[:, :, s], dk_tab, dv_tab, dnull_k, dnull_v)
        return (*grads, None)


# ----------------------------------------------------------------------------- naive PAM (tests only)


def compressed_attention_naive(q, kc, vc, block: int, null_k, null_v):
    """The global stage as one softmax over the null slot and every compressed block, masked to the
    blocks complete in the query's past."""
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ kc.transpose(-1, -2)) / math.sqrt(D)
    scores = scores.masked_fill(~_complete_past_blocks(0, T, kc.shape[2], block, q.device), float("-inf"))
    null = (q @ null_k[:, :, None]) / math.sqrt(D)
    probs = torch.cat([null, scores], dim=-1).softmax(-1)
    return probs[..., 1:] @ vc + probs[..., :1] * null_v[:, None, :]


def selected_attention_naive(q, k, v, kc, block: int, top: int, null_k, null_v):
    """The selected stage as an n x n softmax over the positions of each query's top-k blocks."""
    B, H, T, D = q.shape
    nb = kc.shape[2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if nb:
        visible = _complete_past_blocks(0, T, nb, block, q.device)
        blk = (q @ kc.transpose(-1, -2)).masked_fill(~visible, float("-inf"))
        chosen = torch.zeros_like(blk, dtype=torch.bool).scatter(-1, blk.topk(min(top, nb), -1).indices, True)
        keep[..., : nb * block] = (chosen & visible).repeat_interleave(block, dim=-1)
    null = (q @ null_k[:, :, None]) / math.sqrt(D)
    probs = torch.cat([null, scores.masked_fill(~keep, float("-inf"))], dim=-1).softmax(-1)
    return probs[..., 1:] @ v + probs[..., :1] * null_v[:, None, :]


def window_attention_naive(q, k, v, window: int):
    """The local stage with a materialised n x n score matrix and a -inf window mask."""
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    pos = torch.arange(T, device=q.device)
    dist = pos[:, None] - pos[None, :]
    scores = scores.masked_fill(~((dist >= 0) & (dist < window)), float("-inf"))
    return scores.softmax(-1) @ v


def pam_attention(q, k, v, kc, vc, cfg: PAMConfig, null_k, null_v, gate_logits) -> torch.Tensor:
    """All PAM branches on (B, H, T, D) heads, fused by the gate (logits (B, H, T, n_branches)).

    ``kc, vc`` (B, H, T // compress_block, D) are the compressed keys and values of the complete
    blocks (the caller's choice of compression). ``cfg.attention == "pam_naive"`` computes the same
    function with n x n score matrices and autograd; "pam" with the chunked operator.
    """
    if cfg.attention != "pam_naive":
        if not cfg.select_blocks and len(list(_chunk_spans(q, cfg))) == 1:
            # One chunk and no selected branch: plain autograd keeps this short input's few scores,
            # where the operator would recompute them in backward (a third of smoke-train's default step).
            with torch.autocast(q.device.type, enabled=False), _one_cpu_thread(q.device):
                return _pam_chunk(0, q, k, v, kc, vc, null_k, null_v, gate_logits, cfg)
        return _PAMOperator.apply(q, k, v, kc, vc, null_k, null_v, gate_logits, cfg)
    b = cfg.compress_block
    branches = [compressed_attention_naive(q, kc, vc, b, null_k, null_v)]
    if cfg.select_blocks:
        branches.append(selected_attention_naive(q, k, v, kc, b, cfg.select_blocks, null_k, null_v))
    branches += [window_attention_naive(q, k, v, w) for w in local_windows(cfg)]
    return fuse(branches, gate_logits)


# ----------------------------------------------------------------------------- transformer


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: PAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        if cfg.attention != "full":
            self.null_k = nn.Parameter(torch.zeros(cfg.n_head, self.head_dim))
            self.null_v = nn.Parameter(torch.zeros(cfg.n_head, self.head_dim))
            with torch.random.fork_rng(devices=[]):  # drawn last, in PAMTransformer (shared init)
                self.gate = nn.Linear(cfg.n_embd, cfg.n_head * cfg.n_branches)

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per position, head and branch: (B, H, T, n_branches), from this position's input only."""
        B, T, _ = x.shape
        return self.gate(x).view(B, T, self.n_head, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if self.cfg.attention == "full":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kc, vc = compress_mean(k, v, self.cfg.compress_block)
            y = pam_attention(q, k, v, kc, vc, self.cfg, self.null_k, self.null_v, self.gate_logits(x))
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: PAMConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: PAMConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class PAMTransformer(nn.Module):
    """Token + position embeddings, ``n_layer`` blocks, final norm and a tied output head."""

    def __init__(self, cfg: PAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        gates = [b.attn.gate for b in cast(list[Block], self.blocks) if cfg.attention != "full"]
        for module in self.modules():
            if not any(module is gate for gate in gates):
                self._init_weights(module)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        # The gates are drawn after every shared weight, so that PAM and full attention built with the
        # same seed start from the same embeddings, projections and MLPs: a comparison of the two is
        # then one of attention, not of two random initialisations.
        for gate in gates:
            self._init_weights(gate)
            with torch.no_grad():
                bias = gate.bias.view(cfg.n_head, cfg.n_branches)
                bias[:, -len(local_windows(cfg))] = GATE_BIAS  # the widest local branch
                if cfg.select_blocks:  # the compressed scores choose the selected blocks and, top-k
                    bias[:, :2] = GATE_BIAS  # having no gradient, learn only through their own branch

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, vocab) and, with targets, the mean cross-entropy over targets != -1."""
        T = idx.shape[1]
        if self.cfg.block_size < T:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.cfg.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
