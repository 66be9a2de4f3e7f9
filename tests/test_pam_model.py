"""The PAM reference model: fast path vs the naive n x n formula vs a per-query loop written from the
spec, causality under every variant and precision, the input-conditioned gate."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from reference_model import PAMConfig, PAMTransformer, local_windows  # noqa: E402
from reference_model import model as pam  # noqa: E402

pytestmark = pytest.mark.torch
VARIANTS = [(3, 0), (3, 2), (5, 2)]  # (stages, select_blocks)
BLOCKS = [8, 4]  # compress_block: 8 from 128 tokens in smoke-train, 4 below (selection from 64)
PAM_ONLY = ("null_k", "null_v", "gate.weight", "gate.bias")


@pytest.fixture(autouse=True, params=["compiled", "pytorch"])
def selected_branch_path(request, monkeypatch) -> str:
    """Every test runs twice: the selected branch compiled (select_kernel.c) and on its PyTorch path.
    The compiled one must be there: CI installs a C compiler."""
    if request.param == "pytorch":
        monkeypatch.setattr(pam.select_kernel, "functions", lambda dtype, device: None)
    else:
        assert pam.select_kernel.functions(torch.float32, torch.device("cpu")), pam.select_kernel.status()
    return request.param


def _model(attention: str, stages: int = 3, select_blocks: int = 2, seed: int = 0, **kw) -> PAMTransformer:
    torch.manual_seed(seed)
    cfg = PAMConfig(
        block_size=128, attention=attention, stages=stages, select_blocks=select_blocks, window=16, **kw
    )
    model = PAMTransformer(cfg)
    with torch.no_grad():  # larger weights than the init: sharp, non-uniform attention and gates
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def _naive_twin(fast: PAMTransformer) -> PAMTransformer:
    naive = PAMTransformer(PAMConfig(**{**fast.cfg.to_dict(), "attention": "pam_naive"})).eval()
    naive.load_state_dict(fast.state_dict())
    return naive


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("stages,select_blocks", VARIANTS)
@pytest.mark.parametrize("length", [5, 37, 64, 100])
def test_fast_path_matches_naive_formula(stages: int, select_blocks: int, length: int, block: int) -> None:
    fast = _model("pam", stages, select_blocks, compress_block=block)
    idx = torch.randint(32, (2, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        a, b = fast(idx)[0], _naive_twin(fast)(idx)[0]
    assert (a - b).abs().max().item() <= 1e-5, length


@pytest.mark.parametrize("block", BLOCKS)
def test_chunked_selection_matches_in_value_and_gradient(monkeypatch, block: int) -> None:
    """The operator in chunks of 16 queries recomputed in backward gives the naive formula's gradients."""
    monkeypatch.setattr(pam, "QUERY_CHUNK", 16)
    fast = _model("pam", 3, 2, compress_block=block).train()
    naive = _naive_twin(fast).train()
    idx = torch.randint(32, (2, 53), generator=torch.Generator().manual_seed(3))
    (fast(idx)[0].square().mean()).backward()
    (naive(idx)[0].square().mean()).backward()
    for (name, p), q in zip(fast.named_parameters(), naive.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


def _operator_inputs(cfg: PAMConfig, B: int, H: int, T: int, D: int, dtype=torch.float32) -> list:
    """q, k, v, compressed k and v (drawn on their own, as a learned compression may give them), the
    null slot and gate logits, all requiring grad."""
    gen = torch.Generator().manual_seed(T)
    nb = T // cfg.compress_block
    shapes = [(B, H, T, D)] * 3 + [(B, H, nb, D)] * 2 + [(H, D)] * 2 + [(B, H, T, cfg.n_branches)]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


@pytest.mark.parametrize("stages,select_blocks", VARIANTS)
@pytest.mark.parametrize("chunk", [1, 5, 6, 16, 64])  # < window, not dividing T, == window, > T
def test_operator_gradients_match_the_naive_formula_at_every_chunk_size(
    monkeypatch, stages: int, select_blocks: int, chunk: int
) -> None:
    monkeypatch.setattr(pam, "QUERY_CHUNK", chunk)
    cfg = PAMConfig(stages=stages, select_blocks=select_blocks, compress_block=4, window=6)
    naive_cfg = PAMConfig(**{**cfg.to_dict(), "attention": "pam_naive"})
    inputs = _operator_inputs(cfg, 2, 2, 29, 8)  # 29: the last block is incomplete
    q, k, v, kc, vc, null_k, null_v, gate = inputs
    dout = torch.randn(2, 2, 29, 8, generator=torch.Generator().manual_seed(1))
    fast = pam.pam_attention(q, k, v, kc, vc, cfg, null_k, null_v, gate)
    naive = pam.pam_attention(q, k, v, kc, vc, naive_cfg, null_k, null_v, gate)
    assert (fast - naive).abs().max().item() <= 1e-5
    names = ["q", "k", "v", "kc", "vc", "null_k", "null_v", "gate"]
    grads = zip(
        names, torch.autograd.grad(fast, inputs, dout), torch.autograd.grad(naive, inputs, dout), strict=True
    )
    for name, a, b in grads:
        assert (a - b).abs().max().item() <= 1e-5, name


def test_operator_passes_gradcheck() -> None:
    """Finite differences in float64 on a tiny input (3 chunks of 4 queries, a selected branch)."""
    cfg = PAMConfig(stages=5, select_blocks=2, compress_block=3, window=4)
    inputs = _operator_inputs(cfg, 1, 2, 11, 3, dtype=torch.float64)
    q, k, v, kc, vc, null_k, null_v, gate = inputs

    def op(*xs):
        return pam.pam_attention(*xs[:5], cfg, *xs[5:])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pam, "QUERY_CHUNK", 4)
        assert torch.autograd.gradcheck(op, tuple(inputs), eps=1e-6, atol=1e-5)


class _LargestTensor(TorchDispatchMode):
    """Records the most elements of any dense tensor an operation returns."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("stages", [3, 5])
def test_operator_creates_no_tensor_larger_than_q_with_a_selected_branch(monkeypatch, stages: int) -> None:
    """Forward and backward with 2 selected blocks of 32 keys: no intermediate exceeds q's B*H*T*D
    elements, so peak memory stays linear in T. A copy of each query's selected keys would be
    k*b/1 = 64 times q's row per query (65,536 elements in one chunk of 64 queries, q has 4,096)."""
    monkeypatch.setattr(pam, "SELECT_PAIRS", 1024)
    monkeypatch.setattr(pam, "CHUNK_FLOATS", 0)  # chunks of T / 16 (at least 64) queries, as for wide heads
    cfg = PAMConfig(stages=stages, select_blocks=2, compress_block=32, window=8)
    inputs = _operator_inputs(cfg, 1, 2, 256, 8)
    q, k, v, kc, vc, null_k, null_v, gate = inputs
    with _LargestTensor() as seen:
        out = pam.pam_attention(q, k, v, kc, vc, cfg, null_k, null_v, gate)
        torch.autograd.grad(out, inputs, torch.ones_like(out))
    assert 0 < seen.largest <= q.numel(), seen.largest


def test_operator_runs_on_one_cpu_thread_and_restores_the_count() -> None:
    cfg = PAMConfig(select_blocks=2, compress_block=4, window=6)
    q, k, v, kc, vc, null_k, null_v, gate = _operator_inputs(cfg, 1, 2, 40, 8)
    seen = []
    original = pam._pam_chunk

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pam, "_pam_chunk", spy)
            pam.pam_attention(q, k, v, kc, vc, cfg, null_k, null_v, gate).sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert seen and set(seen) == {1}  # forward and backward chunks


def _spec_reference(q, k, v, cfg: PAMConfig, null_k, null_v, gate_logits):
    """PAM for one query at a time, written from the definitions with Python loops and index ranges.

    It shares no code with the model (no fuse, no masks, no window builder): a mistake in a
    visibility rule or the fusion shows up as a mismatch.
    """
    B, H, T, D = q.shape
    b, top = cfg.compress_block, cfg.select_blocks
    out = torch.zeros_like(q)

    def attend(qv, keys, values):  # softmax over the null slot and the given keys
        scores = torch.stack([qv @ null_k_h] + [qv @ kk for kk in keys]) / math.sqrt(D)
        w = scores.softmax(0)
        return w[0] * null_v_h + sum(w[i + 1] * vv for i, vv in enumerate(values))

    for bi in range(B):
        for h in range(H):
            null_k_h, null_v_h = null_k[h], null_v[h]
            for t in range(T):
                qv = q[bi, h, t]
                done = [j for j in range(T // b) if (j + 1) * b - 1 <= t]  # complete blocks in the past
                kmean = {j: k[bi, h, j * b : (j + 1) * b].mean(0) for j in done}
                vmean = {j: v[bi, h, j * b : (j + 1) * b].mean(0) for j in done}
                branches = [attend(qv, [kmean[j] for j in done], [vmean[j] for j in done])]
                if top:
                    best = sorted(done, key=lambda j: float(qv @ kmean[j]), reverse=True)[:top]
                    pos = [p for j in best for p in range(j * b, (j + 1) * b)]
                    branches.append(attend(qv, [k[bi, h, p] for p in pos], [v[bi, h, p] for p in pos]))
                for w in local_windows(cfg):
                    pos = list(range(max(0, t - w + 1), t + 1))
                    scores = torch.stack([qv @ k[bi, h, p] for p in pos]) / math.sqrt(D)
                    branches.append(sum(a * v[bi, h, p] for a, p in zip(scores.softmax(0), pos, strict=True)))
                gates = gate_logits[bi, h, t].softmax(0)
                out[bi, h, t] = sum(g * br for g, br in zip(gates, branches, strict=True))
    return out


@pytest.mark.parametrize("stages,select_blocks", VARIANTS)
def test_fast_path_matches_a_per_query_reference_of_the_spec(stages: int, select_blocks: int) -> None:
    cfg = PAMConfig(stages=stages, select_blocks=select_blocks, compress_block=4, window=6)
    gen = torch.Generator().manual_seed(stages + select_blocks)
    B, H, T, D = 1, 2, 23, 8  # 23: the last block is incomplete
    q, k, v = (torch.randn(B, H, T, D, generator=gen) for _ in range(3))
    null_k, null_v = torch.randn(H, D, generator=gen), torch.randn(H, D, generator=gen)
    gate = torch.randn(B, H, T, cfg.n_branches, generator=gen)
    kc, vc = pam.compress_mean(k, v, cfg.compress_block)
    fast = pam.pam_attention(q, k, v, kc, vc, cfg, null_k, null_v, gate)
    ref = _spec_reference(q, k, v, cfg, null_k, null_v, gate)
    assert (fast - ref).abs().max().item() <= 1e-5


def _autocast(precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize(
    "attention,stages,select_blocks,block",
    [("full", 3, 0, 8), *(("pam", *v, b) for v in VARIANTS for b in BLOCKS)],
)
def test_no_future_leakage(
    attention: str, stages: int, select_blocks: int, block: int, precision: str
) -> None:
    """Perturbing token t changes no output before t (length 70: not a multiple of block or window)."""
    model = _model(attention, stages, select_blocks, compress_block=block)
    idx = torch.randint(32, (2, 70), generator=torch.Generator().manual_seed(1))
    for t in (3, 8, 31, 40, 69):
        changed = idx.clone()
        changed[:, t] = (idx[:, t] + 7) % 32
        with torch.no_grad(), _autocast(precision):
            before, after = model(idx)[0], model(changed)[0]
        assert torch.equal(before[:, :t], after[:, :t]), f"position < {t} saw token {t}"
        assert not torch.allclose(before[:, t], after[:, t])  # the perturbation is visible where allowed


def test_queries_without_a_complete_block_see_only_the_null_slot() -> None:
    B, H, T, D, b = 1, 2, 12, 8, 4
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    null_k, null_v = torch.randn(H, D), torch.randn(H, D)
    cfg = PAMConfig(compress_block=b, select_blocks=2, window=4)
    kc, vc = pam.compress_mean(k, v, b)
    for branch in (0, 1):  # the global and the selected branch alone: a gate of weight 1 (e^-1e4 == 0)
        gate = torch.zeros(B, H, T, cfg.n_branches)
        gate[..., branch] = 1e4
        out = pam.pam_attention(q, k, v, kc, vc, cfg, null_k, null_v, gate)
        assert torch.allclose(out[0, :, : b - 1], null_v[:, None, :].expand(H, b - 1, D), atol=1e-6)
        assert not torch.allclose(out[0, :, b - 1], null_v)  # block 0 is complete at position b - 1


@pytest.mark.parametrize(
    "stages,select_blocks,start",  # mean initial weight of each branch (softmax of the gate bias)
    [(3, 0, [1, math.exp(pam.GATE_BIAS)]), (3, 2, [1, 1, 1]), (5, 2, [math.exp(pam.GATE_BIAS)] * 3 + [1, 1])],
)
def test_gate_is_a_softmax_of_the_input_with_its_initial_lean(stages, select_blocks, start) -> None:
    torch.manual_seed(0)
    model = PAMTransformer(PAMConfig(stages=stages, select_blocks=select_blocks))  # the real init
    attn = model.blocks[0].attn
    x = torch.randn(2, 9, 64)
    weights = attn.gate_logits(x).softmax(-1)  # (B, H, T, branches): global, [selected], local...
    assert weights.shape == (2, 4, 9, len(start))
    expected = torch.tensor(start) / sum(start)
    assert torch.allclose(weights.mean((0, 1, 2)), expected, atol=0.02), weights.mean((0, 1, 2))
    assert weights.std(dim=(0, 2)).min() > 0  # it varies with the input, not a constant per step
    branches = [torch.full((2, 4, 9, 16), float(i)) for i in range(len(start))]
    logits = attn.gate_logits(x)
    fused = (weights * torch.arange(float(len(start)))).sum(-1, keepdim=True)
    assert torch.allclose(pam.fuse(branches, logits), fused)


@pytest.mark.parametrize("stages,select_blocks", VARIANTS)
def test_pam_and_full_attention_start_from_the_same_shared_weights(stages: int, select_blocks: int) -> None:
    """Same seed: every weight the two models have in common is equal (the gates are drawn last)."""
    torch.manual_seed(0)
    full = PAMTransformer(PAMConfig(attention="full")).state_dict()
    torch.manual_seed(0)
    sparse = PAMTransformer(PAMConfig(stages=stages, select_blocks=select_blocks)).state_dict()
    assert set(sparse) - set(full) == {f"blocks.{i}.attn.{n}" for i in (0, 1) for n in PAM_ONLY}
    assert all(torch.equal(full[k], sparse[k]) for k in full)


def test_full_attention_is_plain_causal_attention() -> None:
    model = _model("full", 3)
    attn = model.blocks[0].attn
    x = torch.randn(1, 9, 64)
    q, k, v = attn.c_attn(x).split(64, dim=2)
    q, k, v = (t.view(1, 9, 4, 16).transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-1, -2)) / 4.0
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    expected = attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 9, 64))
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_config_rejects_bad_values() -> None:
    for bad in ({"stages": 4}, {"attention": "flash"}, {"window": 0}, {"n_head": 5}, {"select_blocks": -1}):
        with pytest.raises(ValueError):
            PAMConfig(**bad)
    assert local_windows(PAMConfig(stages=5, window=16)) == [16, 8, 4]
