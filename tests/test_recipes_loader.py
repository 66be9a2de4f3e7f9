"""Recipes: the shipped stacks load and validate, broken ones fail with one-line errors, and
``recommend`` picks by driver and compute capability (GPU facts are recorded fixtures)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import invoke

from envdoctor.facts import load_facts
from envdoctor.recipes import RecipeError, all_recipes, load_recipe, recipe_hash, recipe_names, recommend

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
REPO = Path(__file__).resolve().parent.parent


def test_shipped_recipes_validate_and_match_their_files():
    recipes = all_recipes()
    names = {r.name for r in recipes}
    assert {"r1-repro-2025", "torch213-cu126", "torch213-cu130", "torch213-cpu"} <= names
    assert sorted(p.stem for p in (REPO / "recipes").glob("*.yaml")) == recipe_names()
    for r in recipes:
        assert re.fullmatch(r"[0-9a-f]{12}", recipe_hash(r))
        assert r.sources and all(s.startswith("https://") for s in r.sources)


def test_r1_recipe_is_the_writeup_stack_with_its_fixes():
    r = load_recipe("r1-repro-2025")
    assert r.base_image == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    assert (r.torch.version, r.torch.variant) == ("2.0.1", "cu118")
    assert r.torch.index_url == "https://download.pytorch.org/whl/cu118"
    assert {"transformers==4.28.1", "accelerate==0.18.0", "numpy<2"} <= set(r.packages)
    assert r.env == {"PYTORCH_CUDA_ALLOC_CONF": "garbage_collection_threshold:0.8"}
    limits = " ".join(r.limits)
    assert "float8" in limits and "Blackwell" in limits and "sm_90" in limits
    assert "9.0" in r.hardware.compute_capabilities and "12.0" not in r.hardware.compute_capabilities


def test_current_stacks_split_by_driver_floor_and_architectures():
    cu126, cu130, cpu = (load_recipe(n) for n in ("torch213-cu126", "torch213-cu130", "torch213-cpu"))
    assert cu126.hardware.driver_min.startswith("525.") and "5.0" in cu126.hardware.compute_capabilities
    assert cu130.hardware.driver_min.startswith("580") and "12.0+PTX" in cu130.hardware.compute_capabilities
    assert "7.0" not in cu130.hardware.compute_capabilities
    assert not cpu.hardware.gpu and cpu.torch.index_url == "https://download.pytorch.org/whl/cpu"
    assert cpu.base_image.startswith(("python:3.11", "debian:bookworm")) and cpu.python == "3.11"


def test_hash_is_canonical_and_changes_with_content(tmp_path):
    original = load_recipe("r1-repro-2025")
    data = yaml.safe_load(Path(original.path).read_text())
    reordered = tmp_path / "r1-repro-2025.yaml"
    reordered.write_text(yaml.safe_dump(dict(reversed(list(data.items())))))
    assert recipe_hash(load_recipe(reordered)) == recipe_hash(original)
    data["packages"] = ["transformers==4.28.0", "accelerate==0.18.0", "numpy<2"]
    reordered.write_text(yaml.safe_dump(data))
    assert recipe_hash(load_recipe(reordered)) != recipe_hash(original)


def _broken(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(Path(load_recipe("torch213-cu126").path).read_text())
    mutate(data)
    path = tmp_path / "torch213-cu126.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d.pop("base_image"), "base_image", "missing"),
        (lambda d: d["torch"].update(variant="cuda12"), "torch.variant", "not cpu, cuXYZ"),
        (lambda d: d["torch"].update(version="2.13.0+cu126"), "torch.version", "plain version"),
        (lambda d: d["packages"].append("numpy>>2"), "packages[3]", "not a valid requirement"),
        (lambda d: d["packages"].append("torch==2.1"), "packages[3]", "torch belongs"),
        (lambda d: d["hardware"].update(driver_min=None), "hardware.driver_min", "missing"),
        (
            lambda d: d["hardware"].update(compute_capabilities=["sm_90"]),
            "hardware.compute_capabilities",
            "8.6",
        ),
        (lambda d: d.update(name="other"), "name", "differs from the file name"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d["env"].update({"BAD-NAME": "1"}), "env.BAD-NAME", "not a valid environment variable"),
    ],
)
def test_invalid_recipe_names_file_field_and_reason(tmp_path, mutate, field, reason):
    path = _broken(tmp_path, mutate)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {field}: ") and reason in message
    assert "\n" not in message


def test_cli_reports_broken_recipe_in_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: x\ntorch: [unclosed\n")
    result = invoke(["recipes", "show", str(bad)])
    assert result.exit_code == 2
    assert re.fullmatch(
        rf"envdoctor: error: {re.escape(str(bad))}: line \d+: not valid YAML \(.*\)\n", result.stderr
    )


def test_cli_unknown_recipe_lists_known_names():
    result = invoke(["recipes", "show", "r2-imaginary"])
    assert result.exit_code == 2
    assert "unknown recipe" in result.stderr and "r1-repro-2025" in result.stderr


def test_cli_lists_and_shows_recipes():
    listing = invoke(["recipes"])
    assert listing.exit_code == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == recipe_names()
    shown = invoke(["recipes", "show", "r1-repro-2025"])
    assert shown.exit_code == 0 and recipe_hash(load_recipe("r1-repro-2025")) in shown.stdout
    assert "numpy<2" in shown.stdout
    as_json = json.loads(invoke(["recipes", "show", "torch213-cpu", "--json"]).stdout)
    assert as_json["torch"]["variant"] == "cpu" and as_json["hash"] == recipe_hash(
        load_recipe("torch213-cpu")
    )


def _verdicts(fixture: str) -> dict:
    return {v.recipe.name: v for v in recommend(load_facts(FIXTURES / fixture))}


def test_fixture_h200_driver580_recommends_cu130():
    ranked = recommend(load_facts(FIXTURES / "healthy_h200.json"))
    assert ranked[0].recipe.name == "torch215-cu130" and ranked[0].fits


def test_fixture_a100_driver535_rejects_cu130_for_the_driver():
    v = _verdicts("driver535_torch211_cu130.json")
    assert v["torch213-cu130"].reasons == ["driver 535.183.01 below the floor 580.65.06 of cu130"]
    assert (
        recommend(load_facts(FIXTURES / "driver535_torch211_cu130.json"))[0].recipe.name == "torch214-cu126"
    )


def test_fixture_rtx5090_driver575_gets_no_cuda_recipe():
    v = _verdicts("rtx5090_torch260_cu126.json")
    assert any("below the floor" in r for r in v["torch213-cu130"].reasons)
    assert any("compute capability 12.0 not covered by cu126" in r for r in v["torch213-cu126"].reasons)
    assert any("12.0 not covered by cu118" in r for r in v["r1-repro-2025"].reasons)
    assert v["torch213-cpu"].fits and v["torch213-cpu"].notes == ["CPU only: the GPU stays unused"]


def test_fixture_v100_recommends_cu126_not_cu130():
    v = _verdicts("v100_torch211_cu128.json")
    assert any("7.0 not covered by cu130" in r for r in v["torch213-cu130"].reasons)
    assert recommend(load_facts(FIXTURES / "v100_torch211_cu128.json"))[0].recipe.name == "torch214-cu126"


def test_cli_recommend_from_facts_file():
    result = invoke(["recommend", "--facts", str(FIXTURES / "driver535_torch211_cu130.json"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["recommended"] == "torch214-cu126"
    rejected = {r["recipe"] for r in data["recipes"] if not r["fits"]}
    assert rejected == {"torch213-cu130", "torch215-cu130"}


def test_recipes_keep_up_with_the_newest_stable_torch_the_tables_know():
    """A release the knowledge tables know must have a recipe: recommend never lags check's advice."""
    from envdoctor.knowledge.cuda import torch_releases
    from envdoctor.versions import version_tuple

    recipes = all_recipes()
    newest = max(version_tuple(r.latest) for r in torch_releases() if r.latest)
    assert max(version_tuple(r.torch.version) for r in recipes) == newest
    # Per current CUDA line too (one the two newest releases ship; cu126 serves pre-Turing GPUs): its
    # recipe has the newest torch built for it. Reproduction stacks (r1-repro-2025, cu118) stay as they are.
    current = {v for t in torch_releases()[-2:] for v in t.cuda_variants}
    for variant in current & {r.torch.variant for r in recipes}:
        shipping = [
            version_tuple(t.latest) for t in torch_releases() if variant in t.cuda_variants and t.latest
        ]
        on_variant = [version_tuple(r.torch.version) for r in recipes if r.torch.variant == variant]
        assert max(on_variant) == max(shipping), f"no recipe for the newest torch with {variant}"


# Hand edits of a shipped recipe file, as a user editing it would make them: (file, old, new) -> field, reason.
EDITS = [
    ("torch213-cpu", "name: torch213-cpu\n", "name: torch213-cpu\n  oops: 1\n", "line 3", "not valid YAML"),
    ("torch213-cpu", 'python: "3.11"', 'python: "3"', "python", "not a major.minor Python version"),
    ("torch213-cpu", 'python: "3.11"', "python: [3, 11]", "python", "expected a non-empty string"),
    ("torch213-cpu", "torch:\n  version: \"2.13.0\"\n  variant: cpu\n  index_url: https://download.pytorch.org/whl/cpu",
     "torch: 2.13", "torch", "expected a mapping, got float"),
    ("torch213-cpu", "variant: cpu", "variant: cpu\n  index-url: x", "torch.index-url", "unknown field"),
    ("torch213-cpu", 'version: "2.13.0"', "version: two", "torch.version", "'two' is not a version"),
    ("torch213-cpu", 'version: "2.13.0"', "version: true", "torch.version", "expected a version string"),
    ("torch213-cpu", "index_url: https://", "index_url: ftp://", "torch.index_url", "not an http(s) URL"),
    ("torch213-cpu", "gpu: false", "gpu: no-idea", "hardware.gpu", "must be true or false"),
    ("torch213-cpu", "driver_min: null", 'driver_min: "525.60.13"', "hardware", "a CPU recipe has no driver_min"),
    ("torch213-cpu", "variant: cpu", "variant: cu126", "torch.variant", "on a recipe with gpu: false"),
    ("torch213-cpu", "env: {}", "env: {OMP_NUM_THREADS: 4}", "env.OMP_NUM_THREADS", "must be a string"),
    ("torch213-cpu", "packages:\n  - transformers==5.24.0\n  - accelerate==1.15.0\n  - numpy==2.4.6",
     "packages: numpy==2.4.6", "packages", "list of non-empty strings"),
    ("torch213-cpu", "  - https://hub.docker.com/_/python", "  - hub.docker.com", "sources[2]", "is not a URL"),
    ("torch213-cpu", "name: torch213-cpu", "name: Torch213_CPU", "name", "must be lower-case letters"),
    ("torch213-cu126", "gpu: true", "gpu: true\n  compute_capabilites: []", "hardware.compute_capabilites",
     "unknown field"),
    ("torch213-cu126", "variant: cu126", "variant: cpu", "torch.variant", "needs a CUDA or ROCm build"),
    ("torch213-cu126", '  compute_capabilities: ["5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"]',
     "  compute_capabilities: []", "hardware.compute_capabilities", "must list the architectures"),
]  # fmt: skip


@pytest.mark.parametrize(("recipe", "old", "new", "field", "reason"), EDITS)
def test_hand_edited_recipe_fails_in_one_line_naming_file_field_and_reason(
    tmp_path, recipe, old, new, field, reason
):
    text = Path(load_recipe(recipe).path).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / f"{recipe}.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = invoke(["recipes", "show", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert re.fullmatch(
        rf"envdoctor: error: {re.escape(str(path))}: {re.escape(field)}: [^\n]*\n", result.stderr
    )
    assert reason in result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"name: torch213-cpu\ndescription: caf\xe9\n", "cannot read (UnicodeDecodeError)"),
        (b"- name: torch213-cpu\n", "expected a mapping at the top level"),
        (b"", "expected a mapping at the top level"),
    ],
)
def test_unreadable_or_shapeless_recipe_file_is_one_line(tmp_path, content, reason):
    path = tmp_path / "torch213-cpu.yaml"
    if content is not None:
        path.write_bytes(content)
    result = invoke(["build", "--print-dockerfile", "--recipe", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"envdoctor: error: {path}: {reason}\n"
