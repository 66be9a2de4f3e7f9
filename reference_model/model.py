"""A small decoder-only transformer whose attention is PAM, the progressive attention mechanism.

PAM mixes, per query and head, several attention branches ("stages"):

1. **Global, coarse.** Keys and values are mean-pooled over blocks of ``compress_block`` tokens and
   every query attends causally to the compressed blocks. A query may only see a block that is
   *complete in its past* (last position of the block <= query position), so nothing from the future
   leaks through a pooled mean. Queries with no complete past block (the first ``b - 1`` positions)
   still have a learned **null key/value** (one per head) to attend to: the softmax is never empty and
   the model can learn to route "nothing to see yet" to it. Cost ``n * (n / b + 1)``, not ``n^2``.
2. **Local, fine.** Exact causal sliding-window attention: query ``t`` sees keys ``t - w + 1 .. t``.
   It is computed blockwise: queries in chunks of ``window_max`` tokens attend to the previous chunk
   plus their own through ``scaled_dot_product_attention`` with a boolean window mask, so the cost is
   ``n * 2 * window_max`` and no ``n x n`` matrix ever exists. The window ``w`` follows the training
   step (:func:`window_at`): it grows linearly from ``window_min`` to ``window_max`` over
   ``window_warmup`` steps, rounded to the nearest integer. This replaces a step-dependent 0/1
   "spatial mask" multiplied onto the scores, which is wrong twice: ``0 * score`` still gets weight
   ``e^0`` in the softmax (masking needs ``-inf``), and it materialises ``n x n`` scores.
3. **Fusion.** ``alpha = sigmoid(<q, step_embed[min(step, 999)]>)`` per query and head, output
   ``alpha * global + (1 - alpha) * local``.

With ``stages=5`` the local stage is split into three windows ``w, w/2, w/4`` (rounded, at least 1),
giving four branches fused by a softmax gate: branch ``i`` has logit ``<q, e_i>`` with its own step
embedding ``e_i``, and the last branch has logit ``0``. For two branches this is exactly the sigmoid
gate above, so stages 3 and 5 share one code path.

``attention="full"`` is plain causal attention (the baseline); ``attention="pam_naive"`` is the same
PAM maths written with materialised ``n x n`` scores masked with ``-inf`` (for tests and benchmarks).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

STEP_EMBEDDINGS = 1000  # the gate's step embedding table; steps beyond it reuse the last row
ATTENTIONS = ("pam", "full", "pam_naive")


@dataclass
class PAMConfig:
    vocab_size: int = 32
    block_size: int = 128  # longest sequence the position table covers
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    attention: str = "pam"  # "pam" | "full" | "pam_naive"
    stages: int = 3  # 3 (global + local + fusion) or 5 (global + three local windows + fusion)
    compress_block: int = 8  # b: tokens pooled into one global key/value
    window_min: int = 4
    window_max: int = 16  # also the chunk size of the blockwise local attention
    window_warmup: int = 200  # steps over which the local window grows from window_min to window_max

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {self.attention!r}")
        if self.stages not in (3, 5):
            raise ValueError(f"stages must be 3 or 5, not {self.stages}")
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be divisible by n_head")
        if not 1 <= self.window_min <= self.window_max:
            raise ValueError("need 1 <= window_min <= window_max")
        if self.compress_block < 1:
            raise ValueError("compress_block must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def window_at(step: int, cfg: PAMConfig) -> int:
    """Local window at a training step: linear from window_min to window_max over window_warmup steps."""
    if cfg.window_warmup <= 0:
        return cfg.window_max
    frac = min(max(step, 0), cfg.window_warmup) / cfg.window_warmup
    return int(math.floor(cfg.window_min + (cfg.window_max - cfg.window_min) * frac + 0.5))


def local_windows(step: int, cfg: PAMConfig) -> list[int]:
    """Windows of the local branches: one for 3 stages, ``w, w/2, w/4`` for 5 stages."""
    w = window_at(step, cfg)
    if cfg.stages == 3:
        return [w]
    return [w, max(1, round(w / 2)), max(1, round(w / 4))]


# ----------------------------------------------------------------------------- fast PAM branches


def compressed_attention(q, k, v, block: int, null_k, null_v):
    """Global stage: causal attention over mean-pooled blocks plus a null slot. q,k,v: (B, H, T, D)."""
    B, H, T, D = q.shape
    nb = T // block  # only complete blocks can ever be visible
    kc = k[:, :, : nb * block].reshape(B, H, nb, block, D).mean(3)
    vc = v[:, :, : nb * block].reshape(B, H, nb, block, D).mean(3)
    kc = torch.cat([null_k.view(1, H, 1, D).expand(B, H, 1, D).to(k.dtype), kc], dim=2)
    vc = torch.cat([null_v.view(1, H, 1, D).expand(B, H, 1, D).to(v.dtype), vc], dim=2)
    pos = torch.arange(T, device=q.device)
    block_end = torch.arange(nb, device=q.device) * block + block - 1
    visible = block_end[None, :] <= pos[:, None]  # (T, nb): block entirely in the query's past
    mask = torch.cat([torch.ones(T, 1, dtype=torch.bool, device=q.device), visible], dim=1)
    return F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask)


def sliding_window_attention(q, k, v, window: int, chunk: int):
    """Local stage: exact causal window attention, chunk by chunk (never an n x n matrix).

    Queries in chunk ``c`` attend to keys of chunks ``c - 1`` and ``c``; ``window <= chunk`` makes
    that enough. The boolean mask keeps keys with ``0 <= query_pos - key_pos < window``.
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
    out = F.scaled_dot_product_attention(qc, kk, vv, attn_mask=mask)
    return out.reshape(B, H, nc * chunk, D)[:, :, :T]


def fuse(q, branches: list[torch.Tensor], step_vectors: torch.Tensor) -> torch.Tensor:
    """Softmax gate over branches; logit_i = <q, e_i> and the last branch's logit is 0.

    For two branches the weights are (sigmoid(<q, e>), 1 - sigmoid(<q, e>)): the write-up's alpha.
    step_vectors: (n_branches - 1, D).
    """
    logits = q @ step_vectors.to(q.dtype).t()  # (B, H, T, n-1)
    logits = torch.cat([logits, torch.zeros_like(logits[..., :1])], dim=-1)
    weights = logits.float().softmax(-1).to(q.dtype)
    return sum(weights[..., i : i + 1] * b for i, b in enumerate(branches))


# ----------------------------------------------------------------------------- naive PAM (tests only)


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
    pos = torch.arange(T, device=q.device)
    key_block_end = (pos // block) * block + block - 1
    visible = (key_block_end[None, :] <= pos[:, None]) & (pos[None, :] < nb * block)
    pooled = pooled.masked_fill(~visible, float("-inf"))
    null_scores = (q @ null_k.view(1, H, D, 1)) / math.sqrt(D)  # (B, H, T, 1)
    probs = torch.cat([pooled, null_scores], dim=-1).softmax(-1)
    return probs[..., :T] @ v + probs[..., T:] * null_v.view(1, H, 1, D)


def window_attention_naive(q, k, v, window: int):
    """The local stage with a materialised n x n score matrix and a -inf window mask."""
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    pos = torch.arange(T, device=q.device)
    dist = pos[:, None] - pos[None, :]
    scores = scores.masked_fill(~((dist >= 0) & (dist < window)), float("-inf"))
    return scores.softmax(-1) @ v


def pam_attention(q, k, v, cfg: PAMConfig, step: int, null_k, null_v, step_vectors) -> torch.Tensor:
    """All PAM stages on (B, H, T, D) heads: global + local branch(es), fused by the step gate.

    ``cfg.attention == "pam_naive"`` computes the same function with n x n score matrices.
    """
    naive = cfg.attention == "pam_naive"
    glob = compressed_attention_naive if naive else compressed_attention
    branches = [glob(q, k, v, cfg.compress_block, null_k, null_v)]
    for w in local_windows(step, cfg):
        if naive:
            branches.append(window_attention_naive(q, k, v, w))
        else:
            branches.append(sliding_window_attention(q, k, v, w, cfg.window_max))
    return fuse(q, branches, step_vectors)


# ----------------------------------------------------------------------------- transformer


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: PAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        if cfg.attention != "full":
            n_branches = cfg.stages - 1  # one fusion stage; the others are branches
            self.null_k = nn.Parameter(torch.zeros(cfg.n_head, self.head_dim))
            self.null_v = nn.Parameter(torch.zeros(cfg.n_head, self.head_dim))
            self.step_embed = nn.Embedding(STEP_EMBEDDINGS, (n_branches - 1) * self.head_dim)

    def step_vectors(self, step: int) -> torch.Tensor:
        """The gate's step embeddings for this step, clamped to the table: (n_branches - 1, D)."""
        row = torch.tensor(min(max(step, 0), STEP_EMBEDDINGS - 1), device=self.step_embed.weight.device)
        return self.step_embed(row).view(-1, self.head_dim)

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if self.cfg.attention == "full":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = pam_attention(q, k, v, self.cfg, step, self.null_k, self.null_v, self.step_vectors(step))
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

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), step)
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
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, step: int = 0):
        """Logits (B, T, vocab) and, with targets, the mean cross-entropy over targets != -1."""
        T = idx.shape[1]
        if self.cfg.block_size < T:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.cfg.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x, step)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
