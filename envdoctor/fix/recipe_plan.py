"""The plan that makes an environment match a recipe (``fix --recipe NAME``).

Only what differs is planned; hardware the recipe cannot run on becomes a manual step. Reads facts
and the recipe; touches nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envdoctor.facts import Facts
from envdoctor.findings import Action, Manual, PipInstall, SetEnv
from envdoctor.fix.merge import assemble, satisfies
from envdoctor.fix.model import Plan
from envdoctor.fix.refusals import refusals
from envdoctor.readers import installed_versions, listed_torch
from envdoctor.versions import public_version

if TYPE_CHECKING:
    from envdoctor.recipes import Recipe


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
        if have is None or not satisfies(req, have):
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
    assemble(plan, actions, facts, activation or {})
    plan.refusals = refusals(facts, allow_system, allow_conda, plan)
    return plan
