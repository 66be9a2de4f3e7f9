"""Merging actions into steps: one ``pip install`` per index, requirements intersected, torch first.

Many findings ask for overlapping changes (``numpy<2`` from one rule, ``numpy>=1.21`` from another;
torchvision next to torch). This module intersects requirements per project, gives a torch install
without an index the CUDA build that this driver and every GPU can run, groups installs so torch's
companions resolve in torch's own command, pins torch while anything else installs, and orders the
steps: uninstalls, installs (torch first), environment variables, manual steps. Reads facts and the
knowledge tables; touches nothing.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envdoctor.facts import Facts
from envdoctor.findings import Action, Manual, PipInstall, PipUninstall, SetEnv
from envdoctor.fix.model import TORCH_FAMILY, Plan, Step, needs_constraints
from envdoctor.readers import capabilities, gpus, installed_versions


def assemble(
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


def satisfies(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False
