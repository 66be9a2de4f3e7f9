"""Float8 linear layers on ``torch._scaled_mm`` with dynamic per-tensor scaling.

Forward: input and weight are scaled by ``E4M3_MAX / amax`` (amax of the current tensor, no history),
cast to ``float8_e4m3fn`` and multiplied by ``torch._scaled_mm`` with the inverse scales, which
undoes the scaling inside the kernel. Backward: gradients are computed in the input's precision
from the saved high-precision tensors (a straight-through estimator for the quantisation), the
usual recipe for a first fp8 smoke test.

``_scaled_mm`` constraints (CUDA is strict, the CPU kernel is lenient, we honour the strict ones
everywhere): both operands 2-D, the second column-major, inner and output dimensions divisible by
16, scales fp32 scalars. On CUDA it needs compute capability >= 8.9 (Ada, Hopper, Blackwell).
"""

from __future__ import annotations

import torch
import torch.nn as nn

E4M3_MAX = 448.0
FP8_UNSUPPORTED = "fp8-unsupported"


def _quantise(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 tensor, inverse scale): t ~= fp8.float() * inverse_scale."""
    amax = t.detach().abs().max().float().clamp(min=1e-12)
    scale = E4M3_MAX / amax
    fp8 = (t.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return fp8, scale.reciprocal()


def fp8_matmul(x2d: torch.Tensor, weight: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """x2d (M, K) @ weight.T (K, N) in fp8 with dynamic scaling; weight is (N, K) row-major."""
    x8, x_inv = _quantise(x2d)
    w8, w_inv = _quantise(weight)
    # weight (N, K) row-major, transposed: (K, N) column-major, as _scaled_mm wants for mat2.
    return torch._scaled_mm(x8, w8.t(), scale_a=x_inv, scale_b=w_inv, out_dtype=out_dtype)


class _Float8MatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x2d, weight)
        return fp8_matmul(x2d, weight, out_dtype=x2d.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x2d, weight = ctx.saved_tensors
        grad_out = grad_out.to(x2d.dtype)
        return grad_out @ weight.to(x2d.dtype), grad_out.t() @ x2d


class Float8Linear(nn.Linear):
    """``nn.Linear`` whose matmul runs in fp8 (e4m3) forward; parameters stay in full precision."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = (
            torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        )
        shape = x.shape
        out = _Float8MatMul.apply(x.reshape(-1, shape[-1]).to(dtype), self.weight)
        out = out.view(*shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias.to(out.dtype)


def fp8_eligible(module: nn.Linear) -> bool:
    return module.in_features % 16 == 0 and module.out_features % 16 == 0


def convert_to_float8(model: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Swap eligible ``nn.Linear`` modules for :class:`Float8Linear` in place; returns how many.

    The output head is skipped (tied to the embedding, and kept precise as usual fp8 recipes do).
    """
    swapped = 0
    for name, module in list(model.named_modules()):
        if type(module) is nn.Linear and fp8_eligible(module) and name.split(".")[-1] not in skip:
            module.__class__ = Float8Linear  # same parameters and hooks, fp8 forward
            swapped += 1
    return swapped


def fp8_support(device: torch.device) -> str | None:
    """None if fp8 matmuls run here, else the finding id ``fp8-unsupported``."""
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return FP8_UNSUPPORTED
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        return FP8_UNSUPPORTED
    try:
        a = torch.ones(16, 16, device=device)
        fp8_matmul(a, a, out_dtype=torch.float32)
    except (RuntimeError, NotImplementedError):
        return FP8_UNSUPPORTED
    return None
