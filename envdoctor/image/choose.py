"""Which recipe ``envdoctor build`` builds when none is named.

Touches: reads the shipped recipes; without --recipe, starts the quick probes (child processes, see
envdoctor.probes). Writes nothing.

What ``recommend`` picks for this machine (its driver and GPUs), else the newest CUDA 13 stack:
the one the top-level Dockerfile is rendered from, the right default for a current driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envdoctor.recipes import Recipe


def fallback_recipe() -> Recipe:
    """The newest shipped CUDA 13 recipe (the top-level Dockerfile's recipe)."""
    from envdoctor.recipes import RecipeError, all_recipes
    from envdoctor.versions import version_tuple

    cuda13 = [r for r in all_recipes() if r.torch.variant.startswith("cu13")]
    if not cuda13:
        raise RecipeError("recipes: no CUDA 13 recipe is shipped (name one with --recipe)")
    return max(cuda13, key=lambda r: (version_tuple(r.torch.version), version_tuple(r.torch.variant[2:])))


def choose_recipe(name: str | None) -> tuple[Recipe, str]:
    """The recipe to build and why: the named one, the recommended one, or the fallback.

    Probing is quick (torch is not imported); a probe failure falls back instead of failing.
    """
    from envdoctor.recipes import load_recipe, recommend

    if name is not None:
        return load_recipe(name), "named with --recipe"
    try:
        from envdoctor.probes import collect

        verdicts = recommend(collect(quick=True))
    except Exception as exc:  # a probe that cannot run here must not stop a build
        return fallback_recipe(), f"default (recommendation unavailable: {exc.__class__.__name__})"
    if verdicts and verdicts[0].fits:
        return verdicts[0].recipe, "recommended for this machine"
    return fallback_recipe(), "default (no recipe fits this machine)"
