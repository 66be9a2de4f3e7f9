"""The planner: findings (or a recipe) plus facts -> an ordered, deduplicated plan of actions.

Rules say *what* should change (``Finding.actions``); the planner merges those actions across
findings, fills in what only the whole picture decides (the torch index from the driver *and*
every GPU's compute capability, a constraint that keeps pip from swapping torch while it installs
something else), orders them (uninstalls, installs with torch first, environment, manual steps)
and refuses targets it must not touch. It reads facts and never probes; the executor
(:mod:`envdoctor.apply`) runs the plan and never plans.

Two decisions shape what runs by default. Only error findings get automatic steps: a warning's
step (installing a 1-5 GB torch where none is installed) is shown but runs only when asked for
(``--include-warnings`` or ``--only ID``). And a planned torch change is projected onto the facts
and the rules run again on that projection, so steps computed for the old torch (an nvcc hint for
cu117 when cu118 is being installed) are dropped and companions (torchvision, torchaudio) built
for the old torch move with it, in torch's own pip command.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envdoctor.facts import Distribution, Facts
from envdoctor.findings import Action, Finding, Manual, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.readers import capabilities, gpus, installed_versions, listed_torch
from envdoctor.versions import public_version

if TYPE_CHECKING:
    from envdoctor.recipes import Recipe

ACTIVATION_NAME = "envdoctor-activate.sh"
STATE_DIR = ".envdoctor"
# Installed from the same index as torch: their builds must match torch's CUDA variant.
TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio", "triton", "pytorch-triton"})


# The kind of action a step holds: the planner keeps installs, uninstalls, variables and manual steps
# apart, and a Step[PipInstall] is known to have specs and an index.
A = TypeVar("A", bound=Action, covariant=True)


@dataclass
class Step(Generic[A]):
    """One action of the plan and the findings (or recipe) it comes from."""

    action: A
    because: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> bool:
        return not isinstance(self.action, Manual)

    def to_dict(self) -> dict[str, Any]:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.action).items()}
        return {"action": data, "because": list(self.because)}


@dataclass(frozen=True)
class Selection:
    """Which findings get automatic steps; every other finding's automatic steps are only shown.

    ``only``: exactly the findings with these ids (any severity; nothing else is planned at all).
    Otherwise errors, plus warnings with ``include_warnings``; info findings only through ``only``.
    Manual steps cost nothing to list, so every listed finding's manual steps are in the plan.
    """

    only: frozenset[str] | None = None
    include_warnings: bool = False

    def lists(self, finding: Finding) -> bool:
        return self.only is None or finding.id in self.only

    def runs(self, finding: Finding) -> bool:
        if self.only is not None:
            return finding.id in self.only
        return finding.severity is Severity.ERROR or (
            self.include_warnings and finding.severity is Severity.WARNING
        )

    @property
    def hint(self) -> str:
        """How to opt in to the steps this selection leaves out (shown above them)."""
        if self.include_warnings:
            return "info findings; run one with --only ID"
        return "warnings and info; add --include-warnings for warnings, or --only ID"


ERRORS_ONLY = Selection()


@dataclass
class Plan:
    python: str | None  # the interpreter the plan is for
    prefix: str | None  # its sys.prefix: where the activation file and snapshots live
    steps: list[Step[Action]] = field(default_factory=list)
    # Automatic steps of findings the selection leaves out: shown, never run (see Selection).
    deferred: list[Step[Action]] = field(default_factory=list)
    selection: Selection = ERRORS_ONLY
    # Pins passed to pip as a constraints file while installing anything that is not torch.
    constraints: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # why --apply must not run (PEP 668, conda)
    notes: list[str] = field(default_factory=list)  # conflicts resolved, unfixable findings, ...

    @property
    def automatic_steps(self) -> list[Step[Action]]:
        return [s for s in self.steps if s.automatic]

    @property
    def manual_steps(self) -> list[Step[Action]]:
        return [s for s in self.steps if not s.automatic]

    @property
    def activation_path(self) -> str | None:
        return f"{self.prefix.rstrip('/')}/{ACTIVATION_NAME}" if self.prefix else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "prefix": self.prefix,
            "activation_file": self.activation_path,
            "steps": [s.to_dict() for s in self.steps],
            "commands": [self.describe(s) for s in self.steps],
            "deferred": [s.to_dict() for s in self.deferred],
            "deferred_commands": [self.describe(s) for s in self.deferred],
            "constraints": list(self.constraints),
            "refusals": list(self.refusals),
            "notes": list(self.notes),
        }

    def describe(self, step: Step[Action]) -> str:
        """The step as the user would type it (pip commands) or read it (env, manual)."""
        action = step.action
        python = self.python or "python"
        if isinstance(action, (PipInstall, PipUninstall)):
            constraints = "<constraints>" if self.constraints and needs_constraints(action) else None
            return shlex.join([python, "-m", "pip", *pip_args(action, constraints)])
        if isinstance(action, SetEnv):
            where = self.activation_path or ACTIVATION_NAME
            if action.value is None:
                return f"unset {action.name} (in {where})"
            return f"export {action.name}={shlex.quote(action.value)} (in {where})"
        return f"MANUAL: {action.text}"


def pip_args(action: PipInstall | PipUninstall, constraints_file: str | None = None) -> list[str]:
    """The pip arguments of an action (after ``python -m pip``): exact specifiers, index, constraints."""
    if isinstance(action, PipUninstall):
        return ["uninstall", "-y", *action.names]
    args = ["install", "--no-input"]
    if action.index_url:
        args += ["--index-url", action.index_url]
    if action.reinstall:
        args.append("--force-reinstall")
    if constraints_file:
        args += ["-c", constraints_file]
    return [*args, *action.specs]


def build_plan(
    findings: list[Finding],
    facts: Facts,
    activation: dict[str, str | None] | None = None,
    allow_system: bool = False,
    allow_conda: bool = False,
    selection: Selection = ERRORS_ONLY,
) -> Plan:
    """Merge the actions of ``findings`` into one ordered plan for the facts' interpreter.

    ``activation`` is what the activation file already sets (see :func:`envdoctor.apply.read_activation`):
    an environment change it already makes is not planned again, which keeps ``fix`` idempotent.
    ``selection`` decides which findings' automatic steps run (default: errors only). When the
    plan changes torch, the findings are derived again for the torch it installs (see
    :func:`project_torch`) and the plan is made from those.
    """
    listed = [f for f in findings if selection.lists(f)]
    plan = _plan_findings(listed, [], facts, activation or {}, selection)
    target = planned_torch(plan)
    if target is not None:
        listed, forced, notes = _rederive(listed, facts, target, selection)
        plan = _plan_findings(listed, forced, facts, activation or {}, selection)
        plan.notes[:0] = notes
    if selection.only is not None:
        absent = sorted(selection.only - {f.id for f in findings})
        if absent:
            plan.notes.append(f"not reported here: {', '.join(absent)}")
    plan.refusals = refusals(facts, allow_system, allow_conda, plan)
    return plan


def _plan_findings(
    findings: list[Finding],
    forced: list[Finding],
    facts: Facts,
    activation: dict[str, str | None],
    selection: Selection,
) -> Plan:
    """The plan of ``findings`` (and ``forced``, which run whatever the selection says)."""
    plan = Plan(python=facts.python.executable, prefix=facts.python.prefix, selection=selection)
    runs: list[tuple[Action, str]] = []
    shown: list[tuple[Action, Finding]] = []
    for finding in [*findings, *forced]:
        if not finding.actions and finding.severity is Severity.ERROR:
            plan.notes.append(f"{finding.id}: no automatic fix; {finding.fix or finding.message}")
        chosen = finding in forced or selection.runs(finding)
        for action in finding.actions:
            if chosen or isinstance(action, Manual):
                runs.append((action, finding.id))
            else:
                shown.append((action, finding))
    # A left-out step that a chosen one performs anyway is not listed twice: its finding is
    # named as a reason of the chosen step instead.
    done = {action for action, _ in runs}
    runs += [(action, finding.id) for action, finding in shown if action in done]
    left_out = [(a, f"{f.id} ({f.severity.value})") for a, f in shown if a not in done]
    _assemble(plan, runs, facts, activation)
    if left_out:
        deferred = Plan(python=plan.python, prefix=plan.prefix)
        _assemble(deferred, left_out, facts, activation)
        plan.deferred = deferred.steps
    return plan


# --- the facts as they will be after a torch change -------------------------------------------


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
    and how many GPUs it sees) becomes unknown; the rules then read the knowledge tables instead. Requirements that torch itself
    declares are pip's to satisfy while it installs torch, so they are no longer unmet; a pin on
    torch is judged against the new version.
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
                if _satisfies(Requirement(unmet.requirement), target.version):
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


def _rederive(
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


def plan_for_recipe(
    recipe: Recipe,
    facts: Facts,
    activation: dict[str, str | None] | None = None,
    allow_system: bool = False,
    allow_conda: bool = False,
) -> Plan:
    """A plan that makes the environment match ``recipe`` (an :class:`envdoctor.recipes.Recipe`).

    Only what differs is planned: torch when its version or build variant differs, a package when
    its installed version does not satisfy the recipe's pin, a variable the activation file does not
    already set. Hardware the recipe cannot run on becomes a manual step, not a refusal.
    """
    from envdoctor.knowledge.cuda import driver_at_least, parse_variant

    plan = Plan(python=facts.python.executable, prefix=facts.python.prefix)
    why = f"recipe {recipe.name}"
    actions: list[tuple[Action, str]] = []
    installed = installed_versions(facts)
    torch_now = listed_torch(facts)
    variant_now = parse_variant(torch_now, facts.torch.cuda) if torch_now else None
    if (
        torch_now is None
        or public_version(torch_now) != recipe.torch.version
        or variant_now != recipe.torch.variant
    ):
        same_version = torch_now is not None and public_version(torch_now) == recipe.torch.version
        actions.append(
            (PipInstall((recipe.torch.requirement,), recipe.torch.index_url, reinstall=same_version), why)
        )
    for spec in recipe.packages:
        req = Requirement(spec)
        have = installed.get(canonicalize_name(req.name))
        if have is None or not _satisfies(req, have):
            actions.append((PipInstall((spec,)), why))
    process_env = facts.system.env or {}
    for name, value in recipe.env.items():
        if process_env.get(name) != value:
            actions.append((SetEnv(name, value), why))
    driver = facts.nvidia.driver_version
    floor = recipe.hardware.driver_min
    if recipe.hardware.gpu and driver and floor and not driver_at_least(driver, floor):
        text = f"Upgrade the NVIDIA driver from {driver} to >= {floor} ({recipe.torch.variant}), then reboot"
        actions.append((Manual(text), why))
    _assemble(plan, actions, facts, activation or {})
    plan.refusals = refusals(facts, allow_system, allow_conda, plan)
    return plan


def refusals(facts: Facts, allow_system: bool, allow_conda: bool, plan: Plan | None = None) -> list[str]:
    """Reasons the plan must not be applied to this interpreter without an explicit flag."""
    if plan is not None and not any(isinstance(s.action, (PipInstall, PipUninstall)) for s in plan.steps):
        return []  # only environment variables / manual steps: nothing touches the packages
    out: list[str] = []
    py = facts.python
    target = py.executable or "this Python"
    if py.externally_managed and not allow_system:
        out.append(
            f"{target} is an externally-managed system Python (PEP 668): pip must not change it. "
            f"Safer: python3 -m venv .venv && envdoctor fix --python .venv/bin/python "
            f"(or pass --break-system-packages to do it anyway)"
        )
    conda_torch = [n for n in (py.conda_packages or {}) if canonicalize_name(n) in ("torch", "pytorch")]
    if conda_torch and not allow_conda:
        out.append(
            f"torch in {py.prefix or target} is managed by conda ({', '.join(sorted(conda_torch))} in "
            f"conda-meta): pip would overwrite conda's files. Safer: a fresh venv or "
            f"`conda install` (or pass --allow-conda to use pip anyway)"
        )
    return out


# --- merging ---------------------------------------------------------------------------------


def _assemble(
    plan: Plan, actions: list[tuple[Action, str]], facts: Facts, activation: dict[str, str | None]
) -> None:
    """Merge, resolve and order ``actions`` into ``plan.steps`` (and its constraints and notes)."""
    uninstall: dict[str, Step[PipUninstall]] = {}
    installs: dict[str, tuple[Requirement, Step[PipInstall]]] = {}  # canonical name -> merged requirement
    env: dict[str, Step[SetEnv]] = {}
    manual: dict[str, Step[Manual]] = {}
    for action, why in actions:
        if isinstance(action, PipUninstall):
            for name in action.names:
                step = uninstall.setdefault(canonicalize_name(name), Step(PipUninstall((name,))))
                _add_reason(step, why)
        elif isinstance(action, PipInstall):
            for spec in action.specs:
                _merge_install(plan, installs, spec, action, why)
        elif isinstance(action, SetEnv):
            current = env.get(action.name)
            if current is None:
                env[action.name] = Step(action, [why])
            elif current.action != action:
                plan.notes.append(
                    f"{why}: {action.name} wanted {action.value!r}; keeping {current.action.value!r} "
                    f"({', '.join(current.because)})"
                )
            else:
                _add_reason(current, why)
        else:
            _add_reason(manual.setdefault(action.text, Step(action)), why)
    unfit = _resolve_torch_index(installs, facts)
    if unfit is not None:
        manual.setdefault(unfit.action.text, unfit)
    install_steps = _group_installs(installs)
    if uninstall:
        merged = PipUninstall(tuple(s.action.names[0] for s in uninstall.values()))
        reasons = [r for s in uninstall.values() for r in s.because]
        plan.steps.append(Step(merged, list(dict.fromkeys(reasons))))
    plan.steps.extend(install_steps)
    plan.steps.extend(s for s in env.values() if activation.get(s.action.name, _MISSING) != s.action.value)
    plan.steps.extend(manual.values())
    plan.constraints = _torch_constraints(install_steps, facts)


_MISSING = object()


def _add_reason(step: Step[Action], why: str) -> None:
    if why not in step.because:
        step.because.append(why)


def _merge_install(
    plan: Plan,
    installs: dict[str, tuple[Requirement, Step[PipInstall]]],
    spec: str,
    action: PipInstall,
    why: str,
) -> None:
    """Add one specifier, intersecting it with an earlier one for the same project."""
    try:
        req = Requirement(spec)
    except InvalidRequirement:
        plan.notes.append(f"{why}: skipped invalid requirement {spec!r}")
        return
    key = canonicalize_name(req.name)
    single = PipInstall((str(req),), action.index_url, action.reinstall)
    if key not in installs:
        installs[key] = (req, Step(single, [why]))
        return
    old_req, old_step = installs[key]
    old_action = old_step.action
    if (old_action.index_url or action.index_url) and old_action.index_url != action.index_url:
        if action.index_url is None:  # a plain pin merges into the index-specific install
            combined = _intersect(old_req, req)
            if combined is not None:
                installs[key] = (
                    combined,
                    Step(
                        PipInstall((str(combined),), old_action.index_url, old_action.reinstall),
                        old_step.because + [why],
                    ),
                )
                return
        plan.notes.append(f"{why}: conflicting install of {req.name} ({spec}); keeping {old_action.specs[0]}")
        return
    combined = _intersect(old_req, req)
    if combined is None:
        plan.notes.append(
            f"{why}: {spec} contradicts {old_req} ({', '.join(old_step.because)}); keeping the latter"
        )
        return
    reinstall = old_action.reinstall or action.reinstall
    installs[key] = (
        combined,
        Step(
            PipInstall((str(combined),), old_action.index_url, reinstall),
            old_step.because + ([] if why in old_step.because else [why]),
        ),
    )


def _intersect(a: Requirement, b: Requirement) -> Requirement | None:
    """Both requirements at once (``numpy<2`` & ``numpy>=1.21`` -> ``numpy<2,>=1.21``), None if impossible."""
    merged = Requirement(str(a))
    merged.specifier = a.specifier & b.specifier
    merged.extras = a.extras | b.extras
    pins = [s.version for s in merged.specifier if s.operator in ("==", "===") and "*" not in s.version]
    for pin in pins:
        try:
            if not merged.specifier.contains(Version(pin), prereleases=True):
                return None
        except InvalidVersion:
            return None
    if len({Version(p).public for p in pins}) > 1:
        return None
    return merged


def _resolve_torch_index(
    installs: dict[str, tuple[Requirement, Step[PipInstall]]], facts: Facts
) -> Step[Manual] | None:
    """Give a torch install without an index the CUDA build this driver and every GPU can run.

    Returns a manual step when no CUDA build of that torch release fits (the install then stays as
    the rule gave it).
    """
    if "torch" not in installs:
        return None
    req, step = installs["torch"]
    version = next((s.version for s in req.specifier if s.operator == "=="), None)
    gpu_list = gpus(facts)
    if step.action.index_url is not None or version is None or not gpu_list:
        return None
    from envdoctor.knowledge.cuda import choose_variant, index_url

    caps = capabilities(gpu_list)
    variant = choose_variant(version, facts.nvidia.driver_version, caps)
    if variant is None:
        text = (
            f"No CUDA build of torch {version} runs on this driver ({facts.nvidia.driver_version}) and "
            f"these GPUs ({', '.join(caps) or 'unknown capability'}): upgrade the driver or pick another "
            f"torch release"
        )
        return Step(Manual(text), list(step.because))
    action = PipInstall(step.action.specs, index_url(variant), step.action.reinstall)
    installs["torch"] = (req, Step(action, step.because))
    return None


def _group_installs(installs: dict[str, tuple[Requirement, Step[PipInstall]]]) -> list[Step[PipInstall]]:
    """One ``pip install`` per (index, reinstall) pair; the group holding torch runs first."""
    groups: dict[tuple[str | None, bool], Step[PipInstall]] = {}
    for key, (_req, step) in installs.items():
        action = step.action
        # A torch-family package follows torch's index when it has none of its own, and on that
        # index joins torch's own command: pip then resolves torch and its companions together.
        index, reinstall = action.index_url, action.reinstall
        if key in TORCH_FAMILY and "torch" in installs:
            torch_action = installs["torch"][1].action
            index = torch_action.index_url if index is None else index
            reinstall = torch_action.reinstall if index == torch_action.index_url else reinstall
        group = groups.setdefault((index, reinstall), Step(PipInstall((), index, reinstall)))
        group.action = PipInstall(group.action.specs + action.specs, index, reinstall)
        for why in step.because:
            _add_reason(group, why)
    ordered = list(groups.values())
    ordered.sort(
        key=lambda s: not any(canonicalize_name(Requirement(x).name) == "torch" for x in s.action.specs)
    )
    return ordered


def needs_constraints(action: PipInstall | PipUninstall) -> bool:
    """Whether pip gets the torch constraints for this action (any install outside torch's family)."""
    return isinstance(action, PipInstall) and not any(
        canonicalize_name(Requirement(s).name) in TORCH_FAMILY for s in action.specs
    )


def _torch_constraints(install_steps: list[Step[PipInstall]], facts: Facts) -> list[str]:
    """Pin torch while other packages install, so a dependency cannot swap the torch build."""
    if not any(needs_constraints(s.action) for s in install_steps):
        return []
    for step in install_steps:
        for spec in step.action.specs:
            req = Requirement(spec)
            if canonicalize_name(req.name) == "torch":
                pins = [s.version for s in req.specifier if s.operator == "=="]
                return [f"torch=={pins[0]}"] if pins else []
    torch_now = installed_versions(facts).get("torch")
    return [f"torch=={torch_now}"] if torch_now else []


def _satisfies(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def render_plan(plan: Plan) -> str:
    """The plan as numbered lines: pip commands, environment changes, then manual steps; then the
    automatic steps left out by the selection, which ``--apply`` does not run."""
    if not plan.steps:
        lines = ["Nothing to do."]
    else:
        lines = [f"Plan for {plan.python or 'this Python'}:"]
        for i, step in enumerate(plan.steps, 1):
            lines.append(f"  {i}. {plan.describe(step)}    [{', '.join(step.because)}]")
        if plan.constraints:
            lines.append(f"  <constraints> = a file pinning {', '.join(plan.constraints)}")
        if any(isinstance(s.action, SetEnv) for s in plan.steps):
            lines.append(f"  Afterwards run: . {plan.activation_path or ACTIVATION_NAME}")
    lines += [f"  note: {n}" for n in plan.notes]
    lines += [f"  REFUSED: {r}" for r in plan.refusals]
    if plan.deferred:
        lines.append(f"Not applied by default ({plan.selection.hint}):")
        lines += [f"  - {plan.describe(s)}    [{', '.join(s.because)}]" for s in plan.deferred]
    return "\n".join(lines) + "\n"
