"""Recipes: known-good stacks as data (base image, Python, torch build, pins, env, hardware).

One YAML file per recipe in the top-level ``recipes/`` folder, shipped in the wheel as
``envdoctor/recipes_data``. ``envdoctor recipes`` lists them, ``recommend`` picks the
newest one this machine can run, ``fix --recipe`` makes an environment match one and ``build``
turns one into a Docker image. A recipe that does not validate raises :class:`RecipeError` with a
one-line ``file: field: reason`` message, so a typo never becomes a half-built environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement

from envdoctor.errors import EnvdoctorError
from envdoctor.facts import Facts
from envdoctor.yamlio import Fields, read_document

if TYPE_CHECKING:
    from envdoctor.fix.model import Plan

VARIANT_RE = re.compile(r"^(cpu|cu\d{3}|rocm\d+(\.\d+)*)$")
CAPABILITY_RE = re.compile(r"^\d+\.\d+(\+PTX)?$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RecipeError(EnvdoctorError, ValueError):
    """A recipe that cannot be read or is invalid: one line, ``file: field: reason``."""


@dataclass(frozen=True)
class TorchSpec:
    version: str  # "2.13.0" (no local label: the variant says which build)
    variant: str  # "cu126", "cu130", "cpu", "rocm7.1"
    index_url: str  # the PyTorch wheel index for that variant

    @property
    def requirement(self) -> str:
        """The pip specifier: ``torch==2.13.0`` (the build comes from :attr:`index_url`)."""
        return f"torch=={self.version}"


@dataclass(frozen=True)
class Hardware:
    gpu: bool
    driver_min: str | None = None  # lowest NVIDIA driver that runs the build, "525.60.13"
    # Architectures compiled into the torch build ("9.0", "12.0+PTX"); empty for CPU stacks.
    compute_capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    base_image: str
    python: str  # "3.12": the base image's python3, used for the venv
    torch: TorchSpec
    packages: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    hardware: Hardware = field(default_factory=lambda: Hardware(gpu=False))
    limits: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    path: str | None = field(default=None, compare=False)  # where it was loaded from

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (without its path), the form that is hashed and printed."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists
        data.pop("path")
        return data

    @property
    def requirements(self) -> list[Requirement]:
        """The non-torch pins as parsed requirements."""
        return [Requirement(p) for p in self.packages]


def recipe_dirs() -> list[Path]:
    """Folders searched for ``<name>.yaml``.

    ``envdoctor/recipes_data`` is a symlink to the top-level ``recipes/`` folder in a checkout and
    a real folder in an installed wheel, so both find the same files.
    """
    packaged = Path(str(resources.files("envdoctor").joinpath("recipes_data")))
    return [packaged] if packaged.is_dir() else []


def recipe_names() -> list[str]:
    """Names of every shipped recipe, sorted."""
    return sorted(p.stem for d in recipe_dirs() for p in d.glob("*.yaml"))


def all_recipes() -> list[Recipe]:
    """Every shipped recipe, validated (the first invalid one raises :class:`RecipeError`)."""
    return [load_recipe(name) for name in recipe_names()]


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe by name (``r1-repro-2025``) or by path to a YAML file."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if not (text_name.endswith((".yaml", ".yml")) or _is_file(path)):
        found = [d / f"{text_name}.yaml" for d in recipe_dirs() if _is_file(d / f"{text_name}.yaml")]
        if not found:
            known = ", ".join(recipe_names()) or "none"
            shown = text_name if len(text_name) <= 80 else text_name[:77] + "..."
            raise RecipeError(f"{shown}: unknown recipe (known: {known})")
        path = found[0]
    data = read_document(path, RecipeError)
    return parse_recipe(data, str(path))


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the OS refuses (over 255 bytes, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def parse_recipe(data: Any, where: str) -> Recipe:
    """Validate recipe data (as loaded from YAML); ``where`` names the file in error messages."""
    v = Fields(where, RecipeError)
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping at the top level")
    v.known(data, {f.name for f in dataclasses.fields(Recipe)} - {"path"})
    name = v.string(data, "name")
    if not NAME_RE.match(name):
        v.fail("name", f"{name!r} must be lower-case letters, digits, '.' and '-'")
    if where.endswith((".yaml", ".yml")) and Path(where).stem != name:
        v.fail("name", f"{name!r} differs from the file name {Path(where).name!r}")
    python = v.string(data, "python")
    if not re.match(r"^3\.\d+$", python):
        v.fail("python", f"{python!r} is not a major.minor Python version like '3.12'")
    torch_data = v.mapping(data, "torch")
    v.known(torch_data, {f.name for f in dataclasses.fields(TorchSpec)}, "torch.")
    torch = TorchSpec(
        version=v.version(torch_data, "version", "torch.version"),
        variant=v.string(torch_data, "variant", "torch.variant"),
        index_url=v.url(torch_data, "index_url", "torch.index_url"),
    )
    if not VARIANT_RE.match(torch.variant):
        v.fail("torch.variant", f"{torch.variant!r} is not cpu, cuXYZ or rocmX.Y")
    if "+" in torch.version:
        v.fail("torch.version", f"{torch.version!r}: give the plain version, the variant names the build")
    packages = tuple(v.string_list(data, "packages", required=False))
    for i, spec in enumerate(packages):
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            v.fail(f"packages[{i}]", f"{spec!r} is not a valid requirement ({reason})")
        if req.name.lower() == "torch":
            v.fail(f"packages[{i}]", "torch belongs in the torch: section, not in packages")
    env = v.mapping(data, "env", required=False)
    for key, value in env.items():
        if not ENV_NAME_RE.match(str(key)):
            v.fail(f"env.{key}", "not a valid environment variable name")
        if not isinstance(value, str):
            v.fail(f"env.{key}", f"value must be a string, got {type(value).__name__}")
    hw = v.mapping(data, "hardware")
    v.known(hw, {f.name for f in dataclasses.fields(Hardware)}, "hardware.")
    gpu = hw.get("gpu")
    if not isinstance(gpu, bool):
        v.fail("hardware.gpu", "must be true or false")
    driver_min = hw.get("driver_min")
    caps = tuple(v.string_list(hw, "compute_capabilities", "hardware.compute_capabilities", required=False))
    for cap in caps:
        if not CAPABILITY_RE.match(cap):
            v.fail("hardware.compute_capabilities", f"{cap!r} is not like '8.6' or '12.0+PTX'")
    if gpu:
        driver_min = v.version(hw, "driver_min", "hardware.driver_min")
        if not caps:
            v.fail("hardware.compute_capabilities", "a GPU recipe must list the architectures it covers")
        if torch.variant == "cpu":
            v.fail("torch.variant", "a GPU recipe needs a CUDA or ROCm build, not cpu")
    else:
        if driver_min is not None or caps:
            v.fail("hardware", "a CPU recipe has no driver_min and no compute_capabilities")
        if torch.variant != "cpu":
            v.fail("torch.variant", f"{torch.variant!r} on a recipe with gpu: false (use cpu)")
    sources = tuple(v.string_list(data, "sources"))
    for i, url in enumerate(sources):
        if not url.startswith(("https://", "http://")):
            v.fail(f"sources[{i}]", f"{url!r} is not a URL")
    if not sources:
        v.fail("sources", "at least one source URL is required")
    return Recipe(
        name=name,
        description=v.string(data, "description"),
        base_image=v.string(data, "base_image"),
        python=python,
        torch=torch,
        packages=packages,
        env={str(k): str(val) for k, val in env.items()},
        hardware=Hardware(gpu=bool(gpu), driver_min=driver_min, compute_capabilities=caps),
        limits=tuple(v.string_list(data, "limits", required=False)),
        sources=sources,
        path=where,
    )


def recipe_hash(recipe: Recipe) -> str:
    """First 12 hex digits of the sha256 of the canonical recipe (sorted-key JSON, no path)."""
    canonical = json.dumps(recipe.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


# --- recommending ----------------------------------------------------------------------------


@dataclass
class Verdict:
    recipe: Recipe
    reasons: list[str]  # why it cannot run here; empty when it can
    notes: list[str] = field(default_factory=list)  # caveats when it can

    @property
    def fits(self) -> bool:
        return not self.reasons


def assess(recipe: Recipe, facts: Facts) -> Verdict:
    """Can this machine (driver, GPUs) run ``recipe``? Reasons name the number that fails."""
    from envdoctor.knowledge.cuda import arch_covers, driver_at_least
    from envdoctor.readers import capabilities, gpus

    gpu_list = gpus(facts)
    verdict = Verdict(recipe, [])
    if not recipe.hardware.gpu:
        if gpu_list:
            verdict.notes.append("CPU only: the GPU stays unused")
        return verdict
    if not gpu_list:
        why = "none found" if gpu_list is not None or facts.nvidia.error else "none known"
        verdict.reasons.append(f"needs an NVIDIA GPU ({why})")
        return verdict
    driver = facts.nvidia.driver_version
    floor = recipe.hardware.driver_min
    if driver is None:
        verdict.notes.append(f"driver version unknown; needs >= {floor}")
    elif floor and not driver_at_least(driver, floor):
        verdict.reasons.append(f"driver {driver} below the floor {floor} of {recipe.torch.variant}")
    for cap in capabilities(gpu_list):
        covered = arch_covers(
            cap,
            list(recipe.hardware.compute_capabilities),
            facts.nvidia.cuda_driver_version,
            wheel_cuda=recipe.torch.variant,
        )
        if not covered:
            archs = ", ".join(recipe.hardware.compute_capabilities)
            verdict.reasons.append(
                f"compute capability {cap} not covered by {recipe.torch.variant} ({archs})"
            )
    if any(g.capability is None for g in gpu_list):
        verdict.notes.append("compute capability of some GPUs unknown")
    return verdict


def guard_recipe_plan(plan: Plan, recipe: Recipe, facts: Facts, force: bool) -> None:
    """A recipe that ``recommend`` rejects here is refused by ``fix --recipe`` unless forced.

    The refusal says why (the same reasons ``recommend`` prints), so that a CUDA stack is never
    planned silently onto a machine without a GPU or with a driver below its floor; with ``force``
    the plan stands and a note keeps the reasons.
    """
    verdict = assess(recipe, facts)
    if verdict.fits:
        return
    why = f"recipe {recipe.name} does not fit this machine: {'; '.join(verdict.reasons)}"
    if force:
        plan.notes.append(f"{why} (planned anyway: --force)")
    else:
        plan.refusals.append(
            f"{why}; `envdoctor recommend` lists the recipes that fit, --force plans it anyway"
        )


def _rank(verdict: Verdict, has_gpu: bool) -> tuple:
    from envdoctor.versions import version_tuple

    r = verdict.recipe
    cuda = version_tuple(r.torch.variant[2:]) if r.torch.variant.startswith("cu") else ()
    return (verdict.fits, r.hardware.gpu == has_gpu, version_tuple(r.torch.version), cuda)


def recommend(facts: Facts, recipes: list[Recipe] | None = None) -> list[Verdict]:
    """Every recipe judged against the machine, best first: the first one is the pick if it fits.

    Order: recipes that run here before those that do not, GPU stacks before CPU ones on a GPU
    machine, then the newest torch, then the newest CUDA.
    """
    verdicts = [assess(r, facts) for r in (all_recipes() if recipes is None else recipes)]
    has_gpu = bool(facts.nvidia.gpus)
    return sorted(verdicts, key=lambda v: _rank(v, has_gpu), reverse=True)


def render_recipe(recipe: Recipe) -> str:
    """The recipe as YAML with its hash, for ``envdoctor recipes show``."""
    import yaml

    head = f"# {recipe.name} (hash {recipe_hash(recipe)}, from {recipe.path})\n"
    return head + yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True, width=1000)
