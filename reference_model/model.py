"""A small decoder-only transformer whose attention is PAM, the progressive attention mechanism.

PAM mixes, per query and head, attention branches that go from coarse to fine:

1. **Global, coarse.** Keys and values are mean-pooled over blocks of ``compress_block`` tokens and
   every query attends causally to the compressed blocks. A query may only see a block that is
   *complete in its past* (last position of the block <= query position), so nothing from the future
   leaks through a pooled mean. Queries with no complete past block (the first ``b - 1`` positions)
   still have a learned **null key/value** (one per head) to attend to: the softmax is never empty and
   the model can learn to route "nothing to see yet" to it. Cost ``n * (n / b + 1)``, not ``n^2``.
2. **Selected, fine.** (``select_blocks`` = k > 0) The query's own scores against the compressed
   keys choose its top-k complete past blocks, and the query attends to every token of those blocks
   at full resolution (plus the null slot), as in DeepSeek's Native Sparse Attention. A mean-pooled
   block can say *where* an answer is; only the block's own tokens can say *what* it is. Cost
   ``n * k * b``. The choice (top-k) is not differentiable; the attention within it is.
3. **Local, fine.** Exact causal sliding-window attention: query ``t`` sees keys ``t - w + 1 .. t``.
   It is computed blockwise: queries in chunks of ``window`` tokens attend to the previous chunk
   plus their own through ``scaled_dot_product_attention`` with a boolean window mask, so the cost is
   ``n * 2 * window`` and no ``n x n`` matrix ever exists. With ``stages=5`` there are three local
   branches with windows ``w, w/2, w/4`` (rounded, at least 1).
4. **Fusion.** A gate computed from the layer's input at the query's position: per head, one logit
   per branch (a linear layer), softmax over the branches, output = the weighted sum of the branch
   outputs. Without a selected branch the bias starts at ``GATE_BIAS`` for the (widest) local branch
   and 0 for the others, so a fresh model starts as exact local attention; with one, the compressed,
   selected and widest local branches start even (the compressed scores also choose the selected
   blocks, and top-k passes no gradient, so they learn only through their own branch). The gates
   are drawn after every other weight: PAM and full attention built with the same seed share all
   their other initial weights.

The write-up's gate was ``sigmoid(<q, step_embed[step]>)``: one embedding row per training step,
each trained once and never used again, and evaluation ran at an untrained row (a constant ~0.5
mix). Its local window also grew with the step from 4 tokens, which starved the first quarter of
training. Both are gone: nothing in the model depends on the training step.

``attention="full"`` is plain causal attention (the baseline); ``attention="pam_naive"`` is the same
PAM maths written with materialised ``n x n`` scores masked with ``-inf`` (for tests and benchmarks).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

ATTENTIONS = ("pam", "full", "pam_naive")
# Initial gate logit of the widest local branch, and of the compressed and selected branches when
# there is a selected one; the others start at 0. Without selection: 98 % local (3 stages), so that
# where the window holds the answer PAM starts as exact attention (add, 3 seeds: 99.0 % vs 95.6 %
# with 2.0, full attention 98.6 %); with it, an even start (1/3 each): on recall at 64 tokens a
# compressed branch started at 6 % left PAM at 71 % where the even start reached 82 % (seed 0).
GATE_BIAS = 4.0
SELECT_BUDGET = 16 * 2**20  # bytes of gathered keys per chunk of queries in the selected branch


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


# ----------------------------------------------------------------------------- fast PAM branches


def _with_null(scores, null_k, q):
    """Prepend the null slot's score to (B, H, T, n) scores."""
    null = (q * null_k.to(q.dtype)[None, :, None, :]).sum(-1, keepdim=True) / math.sqrt(q.shape[-1])
    return torch.cat([null, scores], dim=-1)


def _complete_past_blocks(t0: int, n: int, nb: int, block: int, device) -> torch.Tensor:
    """(n, nb) bool for queries t0 .. t0 + n - 1: block j lies entirely in the query's past."""
    pos = torch.arange(t0, t0 + n, device=device)
    block_end = torch.arange(nb, device=device) * block + block - 1
    return block_end[None, :] <= pos[:, None]


def compressed_attention(q, k, v, block: int, null_k, null_v):
    """Global stage: causal attention over mean-pooled blocks plus a null slot. q,k,v: (B, H, T, D)."""
    B, H, T, D = q.shape
    nb = T // block  # only complete blocks can ever be visible
    kc = k[:, :, : nb * block].reshape(B, H, nb, block, D).mean(3)
    vc = v[:, :, : nb * block].reshape(B, H, nb, block, D).mean(3)
    kc = torch.cat([null_k.view(1, H, 1, D).expand(B, H, 1, D).to(k.dtype), kc], dim=2)
    vc = torch.cat([null_v.view(1, H, 1, D).expand(B, H, 1, D).to(v.dtype), vc], dim=2)
    visible = _complete_past_blocks(0, T, nb, block, q.device)
    mask = torch.cat([torch.ones(T, 1, dtype=torch.bool, device=q.device), visible], dim=1)
    return F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask)


def _selected_chunk(q, kb, vb, kc, t0: int, block: int, top: int, null_k, null_v):
    """Selected branch for queries t0 .. t0 + len(q): top-k visible blocks at full resolution."""
    B, H, C, D = q.shape
    nb = kb.shape[2]
    visible = _complete_past_blocks(t0, C, nb, block, q.device)
    coarse = (q @ kc.transpose(-1, -2)).masked_fill(~visible, float("-inf"))  # (B, H, C, nb)
    chosen = coarse.topk(min(top, nb), dim=-1).indices  # (B, H, C, k)
    valid = visible.expand(B, H, C, nb).gather(-1, chosen)  # fewer than k visible: extra picks masked
    bh = torch.arange(B * H, device=q.device)[:, None]
    flat = chosen.reshape(B * H, -1)
    ks = kb.reshape(B * H, nb, block * D)[bh, flat].view(B, H, C, -1, D)  # (B, H, C, k * b, D)
    vs = vb.reshape(B * H, nb, block * D)[bh, flat].view(B, H, C, -1, D)
    # one query against k * b keys: a product and a sum (a matmul per query would be B*H*C tiny calls)
    scores = (ks * q.unsqueeze(-2)).sum(-1) / math.sqrt(D)  # (B, H, C, k * b)
    scores = scores.masked_fill(~valid.repeat_interleave(block, dim=-1), float("-inf"))
    probs = _with_null(scores, null_k, q).float().softmax(-1).to(q.dtype)
    out = (probs[..., 1:].unsqueeze(-1) * vs).sum(-2)
    return out + probs[..., :1] * null_v.to(q.dtype)[None, :, None, :]


def selected_attention(q, k, v, block: int, top: int, null_k, null_v):
    """Selected stage. Each query gathers k * b keys and values; when they exceed SELECT_BUDGET the
    queries go in chunks, each recomputed in backward, so memory stays bounded at any length."""
    B, H, T, D = q.shape
    nb = T // block
    if nb == 0:  # no complete block anywhere: every query has only the null slot
        return null_v.to(q.dtype)[None, :, None, :].expand(B, H, T, D)
    kb = k[:, :, : nb * block].reshape(B, H, nb, block, D)
    vb = v[:, :, : nb * block].reshape(B, H, nb, block, D)
    kc = kb.mean(3)
    chunk = max(1, SELECT_BUDGET // (B * H * min(top, nb) * block * D * q.element_size()))
    outs = []
    for t0 in range(0, T, chunk):
        args = (q[:, :, t0 : t0 + chunk], kb, vb, kc, t0, block, top, null_k, null_v)
        if torch.is_grad_enabled() and chunk < T:
            outs.append(checkpoint(_selected_chunk, *args, use_reentrant=False))
        else:
            outs.append(_selected_chunk(*args))
    return torch.cat(outs, dim=2)


def sliding_window_attention(q, k, v, window: int, chunk: int):
    """Local stage: exact causal window attention, chunk by chunk (never an n x n matrix).

    Queries in chunk ``c`` attend to keys of chunks ``c - 1`` and ``c``; ``window <= chunk`` makes
    that enough. The boolean mask keeps keys with ``0 <= query_pos - key_pos < window``; it is 4-D
    (one row per chunk) so that the CPU's flash kernel accepts it.
    """
    B, H, T, D = q.shape
    nc = -(-T // chunk)
    pad = nc * chunk - T

    def chunks(x):
        return F.pad(x, (0, 0, 0, pad)).reshape(B * H, nc, chunk, D)

    qc, kc, vc = chunks(q), chunks(k), chunks(v)
    kk = torch.cat([F.pad(kc, (0, 0, 0, 0, 1, 0))[:, :nc], kc], dim=2)  # previous chunk + own
    vv = torch.cat([F.pad(vc, (0, 0, 0, 0, 1, 0))[:, :nc], vc], dim=2)
    i = torch.arange(chunk, device=q.device)[:, None]
    j = torch.arange(2 * chunk, device=q.device)[None, :]
    dist = i + chunk - j  # query position minus key position
    band = (dist >= 0) & (dist < window)
    mask = band.expand(nc, chunk, 2 * chunk).clone()
    mask[0] &= j >= chunk  # chunk 0 has no previous chunk: its "previous" keys are padding
    out = F.scaled_dot_product_attention(qc, kk, vv, attn_mask=mask[None])
    return out.reshape(B, H, nc * chunk, D)[:, :, :T]


def fuse(branches: list[torch.Tensor], gate_logits: torch.Tensor) -> torch.Tensor:
    """Softmax gate over branches: gate_logits (B, H, T, n_branches), branches (B, H, T, D) each."""
    weights = gate_logits.float().softmax(-1).to(branches[0].dtype)
    return cast(torch.Tensor, sum(weights[..., i : i + 1] * b for i, b in enumerate(branches)))


# ----------------------------------------------------------------------------- naive PAM (tests only)


def _block_visibility(T: int, block: int, device) -> torch.Tensor:
    """(T, T) bool: key position p lies in a complete block that ends at or before the query."""
    nb = T // block
    pos = torch.arange(T, device=device)
    key_block_end = (pos // block) * block + block - 1
    return (key_block_end[None, :] <= pos[:, None]) & (pos[None, :] < nb * block)


def compressed_attention_naive(q, k, v, block: int, null_k, null_v):
    """The global stage as an n x n softmax: position p carries the mean score of its block - log b.

    sum_j a_j * mean(v in block j) == sum_p (a_blk(p) / b) v_p, and softmax over blocks equals a
    softmax over positions with scores shifted by -log b, so this is the same function computed the
    expensive way. Masked entries are -inf (never multiplied by 0).
    """
    B, H, T, D = q.shape
    nb = T // block
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)  # (B, H, T, T)
    pooled = torch.full_like(scores, float("-inf"))
    if nb:
        blk = scores[..., : nb * block].reshape(B, H, T, nb, block).mean(-1)
        pooled[..., : nb * block] = blk.repeat_interleave(block, dim=-1) - math.log(block)
    pooled = pooled.masked_fill(~_block_visibility(T, block, q.device), float("-inf"))
    probs = _with_null(pooled, null_k, q).softmax(-1)
    return probs[..., 1:] @ v + probs[..., :1] * null_v.view(1, H, 1, D)


def selected_attention_naive(q, k, v, block: int, top: int, null_k, null_v):
    """The selected stage as an n x n softmax over the positions of each query's top-k blocks."""
    B, H, T, D = q.shape
    nb = T // block
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if nb:
        visible = _block_visibility(T, block, q.device)
        blk = scores[..., : nb * block].reshape(B, H, T, nb, block).mean(-1)
        blk = blk.masked_fill(~visible[:, : nb * block : block], float("-inf"))
        chosen = torch.zeros_like(blk, dtype=torch.bool).scatter(-1, blk.topk(min(top, nb), -1).indices, True)
        keep[..., : nb * block] = chosen.repeat_interleave(block, dim=-1) & visible[:, : nb * block]
    probs = _with_null(scores.masked_fill(~keep, float("-inf")), null_k, q).softmax(-1)
    return probs[..., 1:] @ v + probs[..., :1] * null_v.view(1, H, 1, D)


def window_attention_naive(q, k, v, window: int):
    """The local stage with a materialised n x n score matrix and a -inf window mask."""
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    pos = torch.arange(T, device=q.device)
    dist = pos[:, None] - pos[None, :]
    scores = scores.masked_fill(~((dist >= 0) & (dist < window)), float("-inf"))
    return scores.softmax(-1) @ v


def pam_attention(q, k, v, cfg: PAMConfig, null_k, null_v, gate_logits) -> torch.Tensor:
    """All PAM branches on (B, H, T, D) heads, fused by the gate (logits (B, H, T, n_branches)).

    ``cfg.attention == "pam_naive"`` computes the same function with n x n score matrices.
    """
    b = cfg.compress_block
    if cfg.attention == "pam_naive":
        branches = [compressed_attention_naive(q, k, v, b, null_k, null_v)]
        if cfg.select_blocks:
            branches.append(selected_attention_naive(q, k, v, b, cfg.select_blocks, null_k, null_v))
        branches += [window_attention_naive(q, k, v, w) for w in local_windows(cfg)]
    else:
        branches = [compressed_attention(q, k, v, b, null_k, null_v)]
        if cfg.select_blocks:
            branches.append(selected_attention(q, k, v, b, cfg.select_blocks, null_k, null_v))
        branches += [sliding_window_attention(q, k, v, w, cfg.window) for w in local_windows(cfg)]
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
            y = pam_attention(q, k, v, self.cfg, self.null_k, self.null_v, self.gate_logits(x))
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
