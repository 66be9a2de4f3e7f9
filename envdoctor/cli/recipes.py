"""``recipes`` (list known-good stacks, ``show`` one) and ``recommend`` (the newest one this machine runs).

Touches: reads recipe files; ``recommend`` starts the probes (child processes, see envdoctor.probes)
unless given --facts. Writes nothing.

Parses options and renders; the work is envdoctor.recipes.
"""

import sys
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM

RecipeName = Annotated[
    str,
    typer.Argument(help="Recipe name or path to a recipe YAML.", autocompletion=o.complete_recipe),
]


def register(app: typer.Typer) -> None:
    group = o.new_app()
    group.callback(invoke_without_command=True)(recipes)
    o.command(group, "show")(recipes_show)
    app.add_typer(group, name="recipes")
    o.command(app, "recommend")(recommend)


def recipes(ctx: typer.Context, as_json: o.Json = False, fmt: o.TextOrJson = None) -> int | None:
    """Known-good stacks (base image, Python, torch build, pins, env): list them, or `show` one."""
    import json

    from envdoctor.recipes import all_recipes, recipe_hash

    as_json = o.one_format(as_json, fmt) == "json"
    if ctx.invoked_subcommand is not None:
        return None
    found = all_recipes()
    if as_json:
        rows = [dict(r.to_dict(), hash=recipe_hash(r)) for r in found]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    for r in found:
        hw = f"driver >= {r.hardware.driver_min}" if r.hardware.gpu else "no GPU needed"
        build = f"torch {r.torch.version}+{r.torch.variant}"
        print(f"{r.name:<16} {build:<20} py{r.python:<5} {hw:<22} {r.description}")
    return EXIT_OK


def recipes_show(name: RecipeName, as_json: o.Json = False, fmt: o.TextOrJson = None) -> int:
    """Print one recipe in full (with its hash)."""
    import json

    from envdoctor.recipes import load_recipe, recipe_hash, render_recipe

    as_json = o.one_format(as_json, fmt) == "json"
    r = load_recipe(name)
    if as_json:
        sys.stdout.write(json.dumps(dict(r.to_dict(), hash=recipe_hash(r)), indent=2) + "\n")
    else:
        sys.stdout.write(render_recipe(r))
    return EXIT_OK


def recommend(
    python: o.Python = None, facts: o.Facts = None, as_json: o.Json = False, fmt: o.TextOrJson = None
) -> int:
    """Pick the newest recipe this machine's driver and GPUs can run, and say why others do not fit."""
    import json

    from envdoctor.recipes import all_recipes
    from envdoctor.recipes import recommend as rank
    from envdoctor.sources import gather_facts

    as_json = o.one_format(as_json, fmt) == "json"
    found = all_recipes()
    verdicts = rank(gather_facts(python, facts, quick=True), found)
    if as_json:
        rows = [
            {"recipe": v.recipe.name, "fits": v.fits, "reasons": v.reasons, "notes": v.notes}
            for v in verdicts
        ]
        pick = verdicts[0].recipe.name if verdicts and verdicts[0].fits else None
        sys.stdout.write(json.dumps({"recommended": pick, "recipes": rows}, indent=2) + "\n")
    for v in verdicts if not as_json else []:
        mark = "recommended" if v is verdicts[0] and v.fits else ("fits" if v.fits else "rejected")
        detail = "; ".join(v.reasons or v.notes)
        print(f"{mark:<12} {v.recipe.name:<16} {detail}".rstrip())
    return EXIT_OK if verdicts and verdicts[0].fits else EXIT_PROBLEM
