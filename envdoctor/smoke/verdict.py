"""Turn the figures of a smoke-train run into checks: each passed, failed or skipped, with its figure.

A check never passes without a number behind it; the CLI exits 1 if any check failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from envdoctor.smoke.config import SmokeConfig

LOSS_WINDOW = 10  # steps averaged at the start and the end of the loss curve


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped (e.g. fp8 on hardware without fp8), never counted as passed
    figure: str
    finding: str | None = None  # finding id when the check failed or was skipped for a known reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run_checks(run: dict[str, Any], cfg: SmokeConfig) -> list[Check]:
    """Checks of one precision's training run."""
    p = run["precision"]
    if "unsupported" in run:
        return [Check(f"{p}: supported here", None, "skipped", run["unsupported"])]
    checks = []
    if run["bad_step"] is not None:
        figure = f"loss or gradient not finite at step {run['bad_step']}; stopped there"
        return [Check(f"{p}: no NaN/Inf", False, figure, "smoke-train-nonfinite")]
    checks.append(Check(f"{p}: no NaN/Inf", True, f"{run['steps_done']} steps finite"))
    if run["interrupted"]:
        figure = f"interrupted after step {run['steps_done']}; checkpoint saved, rerun with --resume"
        return [*checks, Check(f"{p}: run completed", False, figure, "smoke-train-interrupted")]
    history = run["history"]
    first, last = _mean(history[:LOSS_WINDOW]), _mean(history[-LOSS_WINDOW:])
    drop = 1 - last / first if first > 0 else 0.0
    checks.append(
        Check(
            f"{p}: loss fell",
            drop >= cfg.min_loss_drop,
            f"{first:.3f} -> {last:.3f} (fell {drop:.0%}, need {cfg.min_loss_drop:.0%})",
        )
    )
    acc = run["accuracy"]
    checks.append(
        Check(
            f"{p}: accuracy", acc >= cfg.min_accuracy, f"{acc:.1%} exact match (need {cfg.min_accuracy:.0%})"
        )
    )
    causal = run["causality"]
    before, after, tol = causal["max_diff_before"], causal["max_diff_after"], causal["tolerance"]
    figure = (
        f"tokens after t changed: logits up to t moved {before:.1e}, after t {after:.1e} "
        f"(allowed {tol:g} x that)"
    )
    ok = before <= tol * after
    checks.append(Check(f"{p}: causal", ok, figure, None if ok else "smoke-train-noncausal"))
    if len(run["checksums"]) > 1:
        sums = run["checksums"]
        figure = (
            f"{len(sums)} ranks, parameter checksum {sums[0]}" if run["ranks_in_sync"] else ", ".join(sums)
        )
        checks.append(Check(f"{p}: ranks in sync", run["ranks_in_sync"], figure))
    diff, tol = run["round_trip_max_diff"], run["round_trip_tolerance"]
    checks.append(
        Check(f"{p}: checkpoint round-trip", diff <= tol, f"max logit diff {diff:.1e} (<= {tol:.0e})")
    )
    return checks


def verdict(result: dict[str, Any], cfg: SmokeConfig) -> list[Check]:
    checks = []
    for p, agree in result["init_agreement"].items():
        ok = agree["rel_diff"] <= agree["tolerance"]
        figure = (
            f"init loss {agree['loss']:.4f} vs fp32 {agree['fp32_loss']:.4f} "
            f"(rel {agree['rel_diff']:.1e} <= {agree['tolerance']:.0e})"
        )
        checks.append(Check(f"{p}: agrees with fp32 at init", ok, figure))
    for run in result["runs"]:
        checks.extend(run_checks(run, cfg))
    if all("unsupported" in run for run in result["runs"]):
        checks.append(
            Check("trained at least one precision", False, "nothing ran", "smoke-train-nothing-ran")
        )
    return checks


def passed(checks: list[Check]) -> bool:
    return all(c.ok is not False for c in checks)
