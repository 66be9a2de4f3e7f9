"""The PAM reference model: fast path vs the naive n x n formula, causality, gate, window schedule."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from reference_model import PAMConfig, PAMTransformer, local_windows, window_at  # noqa: E402
from reference_model.model import STEP_EMBEDDINGS, compressed_attention, fuse  # noqa: E402

pytestmark = pytest.mark.torch


def _model(attention: str, stages: int, seed: int = 0, **kw) -> PAMTransformer:
    torch.manual_seed(seed)
    cfg = PAMConfig(block_size=128, attention=attention, stages=stages, window_min=3, window_max=16, **kw)
    model = PAMTransformer(cfg)
    with torch.no_grad():  # larger weights than the init: sharp, non-uniform attention
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("stages", [3, 5])
@pytest.mark.parametrize("length", [5, 37, 64, 100])
def test_fast_path_matches_naive_formula(stages: int, length: int) -> None:
    fast = _model("pam", stages, window_warmup=100)
    naive = PAMTransformer(PAMConfig(**{**fast.cfg.to_dict(), "attention": "pam_naive"})).eval()
    naive.load_state_dict(fast.state_dict())
    idx = torch.randint(32, (2, length), generator=torch.Generator().manual_seed(length))
    for step in (0, 50, 5000):
        with torch.no_grad():
            a, b = fast(idx, step=step)[0], naive(idx, step=step)[0]
        assert (a - b).abs().max().item() <= 1e-5, (length, step)


@pytest.mark.parametrize("attention,stages", [("pam", 3), ("pam", 5), ("full", 3)])
def test_no_future_leakage(attention: str, stages: int) -> None:
    model = _model(attention, stages)
    idx = torch.randint(32, (1, 70), generator=torch.Generator().manual_seed(1))
    for t in (3, 8, 31, 40, 69):
        changed = idx.clone()
        changed[0, t] = (idx[0, t] + 7) % 32
        with torch.no_grad():
            before, after = model(idx, step=20)[0], model(changed, step=20)[0]
        assert torch.equal(before[0, :t], after[0, :t]), f"position < {t} saw token {t}"
        assert not torch.allclose(before[0, t], after[0, t])  # the perturbation is visible where allowed


def test_queries_without_a_complete_block_see_only_the_null_slot() -> None:
    B, H, T, D, b = 1, 2, 12, 8, 4
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    null_k, null_v = torch.randn(H, D), torch.randn(H, D)
    out = compressed_attention(q, k, v, b, null_k, null_v)
    assert torch.allclose(out[0, :, : b - 1], null_v[:, None, :].expand(H, b - 1, D), atol=1e-6)
    assert not torch.allclose(out[0, :, b - 1], null_v)  # block 0 is complete at position b - 1


def test_three_stage_gate_is_the_sigmoid_of_query_and_step_embedding() -> None:
    q, g, loc = (torch.randn(2, 4, 10, 16) for _ in range(3))
    e = torch.randn(1, 16)
    alpha = torch.sigmoid(q @ e.t())
    assert torch.allclose(fuse(q, [g, loc], e), alpha * g + (1 - alpha) * loc, atol=1e-6)


def test_gate_step_is_clamped_and_changes_with_the_embedding() -> None:
    attn = _model("pam", 5).blocks[0].attn
    assert torch.equal(attn.step_vectors(STEP_EMBEDDINGS - 1), attn.step_vectors(10_000))
    assert not torch.equal(attn.step_vectors(0), attn.step_vectors(1))
    assert attn.step_vectors(3).shape == (3, attn.head_dim)  # 4 branches -> 3 gate logits
    q = torch.randn(1, 4, 6, attn.head_dim)
    branches = [torch.full_like(q, float(i)) for i in range(4)]
    # a different step row gives different mixing weights, hence a different output
    assert not torch.allclose(
        fuse(q, branches, attn.step_vectors(0)), fuse(q, branches, attn.step_vectors(500))
    )


def test_window_schedule_grows_with_the_step() -> None:
    cfg = PAMConfig(window_min=4, window_max=16, window_warmup=100)
    assert [window_at(s, cfg) for s in (-5, 0, 25, 50, 100, 10_000)] == [4, 4, 7, 10, 16, 16]
    assert all(window_at(s, cfg) <= window_at(s + 1, cfg) for s in range(120))
    assert local_windows(100, cfg) == [16]
    assert local_windows(100, PAMConfig(stages=5, window_min=4, window_max=16, window_warmup=100)) == [
        16,
        8,
        4,
    ]
    assert window_at(0, PAMConfig(window_warmup=0)) == PAMConfig().window_max


def test_window_schedule_changes_the_output() -> None:
    model = _model("pam", 3, window_warmup=100)
    idx = torch.randint(32, (1, 40), generator=torch.Generator().manual_seed(2))
    model.blocks[0].attn.step_embed.weight.data.zero_()  # same gate at every step: only the window differs
    model.blocks[1].attn.step_embed.weight.data.zero_()
    with torch.no_grad():
        early, late = model(idx, step=0)[0], model(idx, step=100)[0]
    assert torch.equal(early[0, :3], late[0, :3])  # windows 3 and 16 agree while only 3 tokens exist
    assert not torch.allclose(early[0, 20:], late[0, 20:])


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
    for bad in ({"stages": 4}, {"attention": "flash"}, {"window_min": 9, "window_max": 8}, {"n_head": 5}):
        with pytest.raises(ValueError):
            PAMConfig(**bad)
