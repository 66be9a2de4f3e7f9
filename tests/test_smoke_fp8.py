"""Float8Linear: fp8 (e4m3, per-tensor dynamic scaling) numerics against bf16 and fp32."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from envdoctor.smoke.fp8 import Float8Linear, convert_to_float8, fp8_matmul, fp8_support  # noqa: E402
from reference_model import PAMConfig, PAMTransformer  # noqa: E402

pytestmark = pytest.mark.torch
CPU = torch.device("cpu")


def test_scaled_mm_runs_on_this_cpu() -> None:
    assert fp8_support(CPU) is None  # torch >= 2.13 ships a CPU _scaled_mm


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_fp8_linear_matches_bf16_within_e4m3_precision() -> None:
    torch.manual_seed(0)
    dense = torch.nn.Linear(128, 64, bias=True)
    fp8 = copy.deepcopy(dense)
    fp8.__class__ = Float8Linear
    x = torch.randn(4, 10, 128) * 30  # scaling must cope with magnitudes far from 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref, out = dense(x), fp8(x)
    assert out.dtype == torch.bfloat16 and out.shape == (4, 10, 64)
    assert _rel(out, dense(x)) < 0.05  # e4m3 keeps 3 mantissa bits: a few percent
    assert _rel(out, ref) < 0.05
    assert _rel(out, ref) > 1e-4  # it really is quantised, not a plain bf16 matmul


def test_fp8_matmul_is_exact_on_values_e4m3_represents() -> None:
    a = torch.tensor([[1.0, 2.0, -0.5, 4.0] * 4] * 16)
    w = torch.tensor([[0.25, -1.0, 2.0, 0.5] * 4] * 32)  # times the scale 224: all in e4m3
    assert torch.equal(fp8_matmul(a, w, torch.float32), a @ w.t())


def test_fp8_backward_gives_full_precision_gradients() -> None:
    torch.manual_seed(1)
    dense = torch.nn.Linear(64, 32, bias=False)
    fp8 = copy.deepcopy(dense)
    fp8.__class__ = Float8Linear
    x1 = torch.randn(16, 64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(16, 32)
    dense(x1).backward(g)
    fp8(x2).backward(g)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)  # straight-through: same as the dense grads
    assert torch.allclose(dense.weight.grad, fp8.weight.grad, atol=1e-5)


def test_convert_swaps_eligible_layers_and_keeps_the_head() -> None:
    model = PAMTransformer(PAMConfig(n_embd=64, n_head=4, n_layer=2))
    assert convert_to_float8(model) == 8  # qkv, proj, fc, mlp-proj in two blocks
    assert type(model.lm_head) is torch.nn.Linear
    assert model.lm_head.weight is model.wte.weight  # tying survives
    odd = torch.nn.Sequential(torch.nn.Linear(24, 32))
    assert convert_to_float8(odd) == 0  # 24 is not a multiple of 16
