"""The facts as they will be after a planned torch change, and the findings that then still hold.

A step computed for the old torch (an nvcc hint for cu117 when cu118 is being installed) must not
run, and companions built for the old torch (torchvision, torchaudio) must move with it. So the
planned torch is projected onto a copy of the facts and the rules run again on that projection.
Reads facts and runs rules on a copy; touches nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envdoctor.facts import Distribution, Facts
from envdoctor.findings import Action, Finding, PipInstall
from envdoctor.fix.merge import satisfies
from envdoctor.fix.model import TORCH_FAMILY, Plan, Selection, Step


@dataclass(frozen=True)
class TorchTarget:
    """The torch a plan installs: ``version`` with its local tag when the index fixes the build."""

    version: str  # "2.0.1+cu118", or "2.7.1" from plain PyPI (build unknown)
    variant: str | None  # "cu118", "cpu", or None (unknown)
    step: Step[Action]


def planned_torch(plan: Plan) -> TorchTarget | None:
    """The exact torch release a plan's install step pins (``torch==X``), or None."""
    from envdoctor.knowledge.cuda import INDEX_BASE, parse_variant

    for step in plan.steps:
        if not isinstance(step.action, PipInstall):
            continue
        for spec in step.action.specs:
            req = Requirement(spec)
            pins = [s.version for s in req.specifier if s.operator == "=="]
            if canonicalize_name(req.name) != "torch" or not pins or "*" in pins[0]:
                continue
            index = (step.action.index_url or "").rstrip("/")
            from_index = index.rsplit("/", 1)[1] if index.startswith(f"{INDEX_BASE}/") else None
            variant = from_index or parse_variant(pins[0], None)  # or the pin's own tag (+cpu)
            release = pins[0].split("+", 1)[0]
            return TorchTarget(f"{release}+{variant}" if variant else pins[0], variant, step)
    return None


def project_torch(facts: Facts, target: TorchTarget) -> Facts:
    """A copy of ``facts`` with the planned torch in place of the installed one.

    What only an import of the new build can tell (arch list, warnings, cuDNN, FP8 support, whether
    and how many GPUs it sees) becomes unknown; the rules then read the knowledge tables instead.
    Requirements that torch itself declares are pip's to satisfy while it installs torch, so they
    are no longer unmet; a pin on torch is judged against the new version.
    """
    from envdoctor.knowledge.cuda import cuda_of_variant

    after = copy.deepcopy(facts)
    cuda = cuda_of_variant(target.variant) if target.variant else None
    hip = target.variant[4:] if target.variant and target.variant.startswith("rocm") else None
    t = after.torch
    t.status = "ok" if target.variant else "unknown"  # known build: imports as that build
    t.version, t.cuda, t.hip = target.version, cuda, hip
    t.error = t.warnings = t.arch_list = t.cudnn_version = t.nccl_version = None
    t.float8_dtypes = t.scaled_mm = t.cuda_available = t.device_count = None
    if not t.devices:  # the old build saw no device: whether the new one does is unknown
        t.devices = None
    pkgs = after.packages
    pkgs.torch_build = {"version": target.version, "cuda": cuda, "hip": hip, "git_version": None}
    for listing in (pkgs.versions, pkgs.all):
        if listing is not None:
            listing["torch"] = target.version
    if pkgs.torch_installs:
        location = pkgs.torch_installs[0].location
        pkgs.torch_installs = [Distribution("torch", target.version, location, True)]
    if pkgs.unmet:
        still = []
        for unmet in pkgs.unmet:
            if canonicalize_name(unmet.package) == "torch":
                continue
            if _names_torch(unmet.requirement):
                if satisfies(Requirement(unmet.requirement), target.version):
                    continue
                unmet.installed = target.version
            still.append(unmet)
        pkgs.unmet = still
    return after


def _names_torch(requirement: str) -> bool:
    try:
        return canonicalize_name(Requirement(requirement).name) == "torch"
    except InvalidRequirement:
        return False


def rederive(
    findings: list[Finding], facts: Facts, target: TorchTarget, selection: Selection
) -> tuple[list[Finding], list[Finding], list[str]]:
    """Findings as they hold once ``target`` is installed: (kept and new, companions, notes).

    The findings that asked for the torch change stay, and so do findings no rule makes (there
    is nothing to derive them from). Every other finding stays only if the rules still report it
    with the same actions for the projected facts; one they report with other actions (an nvcc
    hint for the new CUDA) is replaced. A new finding whose actions only
    install torch's companions (torchvision built for the old torch) runs with torch whatever the
    selection; a new finding that wants yet another torch is noted, not planned.
    """
    from envdoctor.rules import all_rules, evaluate

    # Findings from elsewhere than the rules (and those that asked for torch) cannot go stale here.
    fixed = set(target.step.because) | ({f.id for f in findings} - {r.id for r in all_rules()})
    after = [f for f in evaluate(project_torch(facts, target)) if f.id not in fixed]
    after_keys = {_key(f) for f in after}
    before_keys = {_key(f) for f in findings}
    kept = [f for f in findings if f.id in fixed or _key(f) in after_keys]
    gone = list(dict.fromkeys(f.id for f in findings if f not in kept))
    new = [f for f in after if _key(f) not in before_keys]
    companions = [f for f in new if f.actions and all(_installs_companion(a) for a in f.actions)]
    wants_torch = [f for f in new if any(_installs_torch(a) for a in f.actions)]
    added = [f for f in new if f not in companions and f not in wants_torch and selection.lists(f)]
    with_torch = f"the planned torch {target.version}"
    new_ids = list(dict.fromkeys(f.id for f in [*added, *companions]))
    notes = [
        f"{verb} {', '.join(ids)}{tail}"
        for verb, ids, tail in (
            ("dropped", [i for i in gone if i not in new_ids], f": no longer holds with {with_torch}"),
            ("re-derived", [i for i in new_ids if i in gone], f" for {with_torch}"),
            ("added", [i for i in new_ids if i not in gone], f": follows from {with_torch}"),
        )
        if ids
    ]
    notes.extend(f"{f.id}: still reported with {with_torch} ({f.message})" for f in wants_torch)
    return kept + added, companions, notes


def _key(finding: Finding) -> tuple[str, tuple[Action, ...]]:
    return finding.id, tuple(finding.actions)


def _installs_companion(action: Action) -> bool:
    """A pip install of torchvision/torchaudio/... only (no torch)."""
    return isinstance(action, PipInstall) and all(
        (name := canonicalize_name(Requirement(s).name)) in TORCH_FAMILY and name != "torch"
        for s in action.specs
    )


def _installs_torch(action: Action) -> bool:
    return isinstance(action, PipInstall) and any(_names_torch(s) for s in action.specs)
