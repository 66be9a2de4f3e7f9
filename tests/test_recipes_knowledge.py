"""Every recipe agrees with the knowledge tables the rules read: its torch index, its driver floor and the
architectures its wheel covers. A recipe that drifted from the tables would be recommended for machines
that `check` then reports broken (or the other way round)."""

from __future__ import annotations

import pytest

from envdoctor.knowledge import cuda as kb
from envdoctor.recipes import all_recipes


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_recipe_matches_the_knowledge_tables(recipe) -> None:
    variant = recipe.torch.variant
    assert recipe.torch.index_url == kb.index_url(variant)
    cuda = kb.cuda_of_variant(variant)
    if cuda is None:  # a CPU build: no driver, no architectures
        assert variant == "cpu" and not recipe.hardware.gpu
        assert recipe.hardware.driver_min is None and recipe.hardware.compute_capabilities == ()
        return
    # The floor lies between the minor-version-compatibility floor and the toolkit's own driver.
    floor, toolkit = kb.min_driver_for_cuda(cuda), kb.toolkit_driver_for_cuda(cuda)
    assert recipe.hardware.driver_min and floor and toolkit
    assert kb.driver_at_least(recipe.hardware.driver_min, floor), (recipe.hardware.driver_min, floor)
    assert kb.driver_at_least(toolkit, recipe.hardware.driver_min), (recipe.hardware.driver_min, toolkit)
    assert list(recipe.hardware.compute_capabilities) == kb.arch_list(recipe.torch.version, variant)


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_recipe_torch_is_a_release_the_tables_know(recipe) -> None:
    """The torch version is published (not past the newest patch of its line), for the recipe's Python,
    and a CUDA recipe's variant is one that release ships."""
    from envdoctor.versions import version_tuple

    release = kb.torch_release(recipe.torch.version)
    assert release is not None and release.latest, (
        f"torch {recipe.torch.version} is not in torch_releases.yaml"
    )
    assert version_tuple(recipe.torch.version) <= version_tuple(release.latest)
    assert recipe.python in release.python, (recipe.python, release.python)
    if recipe.torch.variant.startswith("cu"):
        assert recipe.torch.variant in release.cuda_variants, (recipe.torch.variant, release.cuda_variants)
