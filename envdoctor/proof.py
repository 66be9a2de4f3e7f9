"""Proof by training: the default smoke-train in a target interpreter, for ``fix --apply --smoke``
and ``check --smoke``.

A re-check reads facts; only training shows that a torch that imports can also run its kernels,
that autograd works and that a checkpoint round-trips. The run is smoke-train's default (the tiny
reference model on the local task), with the options that matter passed through; its checkpoints
go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

from envdoctor.smoke import ConfigError, Launch, SmokeConfig
from envdoctor.smoke.render import precision_rows, print_text
from envdoctor.smoke.runner import train
from envdoctor.smoke.verdict import Check, passed, verdict


@dataclass(frozen=True)
class SmokeOptions:
    """What passes through from ``fix`` / ``check`` to the smoke-train."""

    device: str = "auto"
    precision: str = "fp32"
    nproc: int = 1
    timeout: float = 900.0

    def config(self, out_dir: str) -> SmokeConfig:
        """The smoke-train's default run with these options (ConfigError for a bad combination)."""
        return SmokeConfig(device=self.device, precision=self.precision, out_dir=out_dir)


@dataclass
class Proof:
    """A smoke-train's verdict: passed, or which check failed (or the finding that stopped it)."""

    python: str
    ok: bool
    checks: list[Check] = field(default_factory=list)
    finding: str | None = None  # set when no training result came back (torch-import-error, timeout, ...)
    detail: str = ""
    result: dict[str, Any] | None = None

    @property
    def failed(self) -> list[str]:
        """``check: figure`` for every failed check, or ``[finding] detail`` when training never ended."""
        if self.finding:
            return [f"[{self.finding}] {self.detail}"]
        return [f"{c.name}: {c.figure}" for c in self.checks if c.ok is False]

    def reason(self) -> str:
        return "smoke-train failed: " + "; ".join(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "ok": self.ok,
            "failed": [] if self.ok else self.failed,
            "finding": self.finding,
            "detail": self.detail,
            "checks": [c.to_dict() for c in self.checks],
            "precisions": precision_rows(self.result) if self.result else [],
        }


def validate(options: SmokeOptions) -> None:
    """Raise ConfigError for options no smoke-train would accept (before anything runs)."""
    if options.nproc < 1 or not 0 < options.timeout < float("inf"):
        raise ConfigError("--nproc must be >= 1 and --timeout a positive number of seconds")
    options.config("unused")


def smoke(python: str, options: SmokeOptions) -> Proof:
    """Train the reference model with ``python`` and judge the run (never raises for a broken torch)."""
    with tempfile.TemporaryDirectory(prefix="envdoctor-proof-") as out_dir:
        cfg = options.config(out_dir)
        launch = Launch(python=python, nproc=options.nproc, timeout_s=options.timeout)
        outcome = train(cfg, launch, lambda _event: None)
    if outcome.result is None:
        return Proof(python, False, finding=outcome.error or "smoke-train-crashed", detail=outcome.detail)
    checks = verdict(outcome.result, cfg)
    return Proof(python, passed(checks), checks, result=outcome.result)


def print_proof(proof: Proof) -> None:
    """The smoke-train's own table of checks, then one verdict line."""
    from rich.console import Console

    if proof.result is not None:
        print_text(proof.result, proof.checks, None, Console())
    verdict_line = "passed" if proof.ok else proof.reason()
    print(f"Smoke-train with {proof.python}: {verdict_line}", flush=True)
