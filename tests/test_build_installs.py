"""envdoctor as users install it: a wheel with pip, ``pipx install`` and ``uv tool install``.

Each install is real and lives in this test's temporary folder, never next to the checkout, and
runs with the temporary folder as working directory. The wheel is the one ``pip wheel --no-deps``
builds from this checkout. ``build`` from an install must send a wheel rebuilt from the installed
files (an install has no pyproject.toml), the same bytes whichever tool installed it; the image
built from it runs ``check`` inside. ``check`` and ``smoke-train`` run from each install too, with
torch 2.13.0 added the way each tool adds a package (pip, ``pipx inject``, ``uv tool install --with``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from build_helpers import debian_python_image, docker_client

from envdoctor import __version__

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INSTALLERS = ("pip", "pipx", "uv")
TORCH = "torch==2.13.0"
LOCAL_WHEELS = Path(
    "/opt/wheels"
)  # where this machine keeps the torch CPU wheel (pip finds it via its config)
TINY_RUN = [
    "--task",
    "local",
    "--seq-len",
    "16",
    "--batch-size",
    "16",
    "--steps",
    "30",
    "--min-accuracy",
    "0",
]
# Printed from inside the tool's interpreter: the build context `envdoctor build` would send, as a file.
CONTEXT_SCRIPT = """
import sys
from envdoctor.build.context import make_context, own_source
from envdoctor.build.dockerfile import render_dockerfile
from envdoctor.recipes import load_recipe
own = own_source()
dockerfile = render_dockerfile(load_recipe("torch213-cpu"), own_wheel=own.name)
with open(sys.argv[1], "wb") as out:
    out.write(make_context(dockerfile, own).read())
"""


def _run(
    command: list[str | Path], cwd: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    """Run a command with a clean environment (no PYTHONPATH that could reach the checkout)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def _not_source(folder: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: the venv, git, build outputs and caches."""
    caches = shutil.ignore_patterns("__pycache__", ".*_cache", "*.egg-info")(folder, names)
    top = {".venv", ".git", "build", "dist"} if Path(folder) == ROOT else set()
    return caches | (top & set(names))


@pytest.fixture(scope="module")
def own_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """envdoctor's wheel, built by pip from a copy of the checkout (pip writes build/ into its input)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_not_source)
    _ok(_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", src], cwd=tmp))
    (wheel,) = (tmp / "dist").glob("envdoctor-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory, own_wheel: Path) -> dict[str, Path]:
    """``{installer: folder of its envdoctor command}``, each with torch added the installer's way."""
    tmp = tmp_path_factory.mktemp("installs")
    bins = {}

    venv = tmp / "pip-venv"
    _ok(_run([sys.executable, "-m", "venv", venv], cwd=tmp))
    pip_install = [venv / "bin/pip", "install", "-q", "--find-links", LOCAL_WHEELS]
    _ok(_run([*pip_install, own_wheel, TORCH], cwd=tmp, timeout=600))
    bins["pip"] = venv / "bin"

    if not (BIN / "pipx").exists() or not (BIN / "uv").exists():
        pytest.skip("pipx and uv are not installed in the test venv (.ci/run installs them)")
    pipx_env = {"PIPX_HOME": str(tmp / "pipx"), "PIPX_BIN_DIR": str(tmp / "pipx-bin")}
    pipx_env["PIPX_MAN_DIR"] = str(tmp / "pipx-man")
    # pipx's uv backend (its default when uv is installed) would not look in the local wheel folder.
    pipx_env["PIPX_DEFAULT_BACKEND"] = "pip"
    _ok(_run([BIN / "pipx", "install", own_wheel], cwd=tmp, timeout=600, **pipx_env))
    inject = [BIN / "pipx", "inject", f"--pip-args=--find-links {LOCAL_WHEELS}", "envdoctor", TORCH]
    _ok(_run(inject, cwd=tmp, timeout=600, **pipx_env))
    bins["pipx"] = tmp / "pipx-bin"

    uv_env = {"UV_TOOL_DIR": str(tmp / "uv-tools"), "UV_TOOL_BIN_DIR": str(tmp / "uv-bin")}
    uv_env["UV_PYTHON_DOWNLOADS"] = "never"
    install = [BIN / "uv", "tool", "install", "--python", sys.executable, "--find-links", LOCAL_WHEELS]
    _ok(_run([*install, "--with", TORCH, own_wheel], cwd=tmp, timeout=600, **uv_env))
    bins["uv"] = tmp / "uv-bin"
    return bins


def _wheel_files(data: bytes) -> dict[str, str]:
    """``{member: sha256}`` of a wheel, its RECORD left out (its lines differ by order only)."""
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        return {
            name: hashlib.sha256(wheel.read(name)).hexdigest()
            for name in wheel.namelist()
            if not name.endswith(".dist-info/RECORD")
        }


def _context(bin_dir: Path, tmp_path: Path) -> tarfile.TarFile:
    """The build context the install's envdoctor makes, from the install's own interpreter."""
    python = (bin_dir / "envdoctor").resolve().parent / "python"
    out = tmp_path / f"context-{bin_dir.name}.tar"
    _ok(_run([python, "-c", CONTEXT_SCRIPT, out], cwd=tmp_path))
    return tarfile.open(out)


def test_build_context_from_each_install_is_the_installed_wheel(own_wheel, installs, tmp_path):
    rebuilt = {}
    for installer, bin_dir in installs.items():
        with _context(bin_dir, tmp_path) as tar:
            names = tar.getnames()
            assert "pyproject.toml" not in names and not any(n.startswith("envdoctor/") for n in names)
            (member,) = [n for n in names if n.startswith("envdoctor-wheel/")]
            assert member == f"envdoctor-wheel/{own_wheel.name}", installer
            assert f"pip install --no-cache-dir /opt/envdoctor-src/{own_wheel.name}" in (
                tar.extractfile("Dockerfile").read().decode()
            )
            rebuilt[installer] = tar.extractfile(member).read()
    # The files of the wheel pip built, byte for byte; the same wheel from every installer.
    assert _wheel_files(rebuilt["pip"]) == _wheel_files(own_wheel.read_bytes())
    assert rebuilt["pipx"] == rebuilt["pip"] and rebuilt["uv"] == rebuilt["pip"]
    # Its RECORD is valid: pip installs it (pip checks each file against it) into a fresh venv.
    wheel = tmp_path / own_wheel.name
    wheel.write_bytes(rebuilt["uv"])
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "v"], cwd=tmp_path))
    pip = [sys.executable, "-m", "pip", "--python", tmp_path / "v/bin/python", "install", "-q", "--no-deps"]
    _ok(_run([*pip, wheel], cwd=tmp_path))
    version = _ok(
        _run(
            [tmp_path / "v/bin/python", "-c", "import envdoctor; print(envdoctor.__version__)"], cwd=tmp_path
        )
    )
    assert version.stdout.strip() == __version__


@pytest.mark.parametrize("installer", INSTALLERS)
def test_print_dockerfile_from_install_installs_its_wheel(installer, installs, own_wheel, tmp_path):
    result = _ok(
        _run(
            [installs[installer] / "envdoctor", "build", "--recipe", "torch213-cpu", "--print-dockerfile"],
            cwd=tmp_path,
        )
    )
    assert "COPY envdoctor-wheel/ /opt/envdoctor-src/\n" in result.stdout
    assert "COPY pyproject.toml" not in result.stdout


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("installer", INSTALLERS)
def test_check_and_smoke_train_from_install(installer, installs, tmp_path):
    envdoctor = installs[installer] / "envdoctor"
    check = _run([envdoctor, "check", "--json"], cwd=tmp_path, timeout=120)
    assert check.returncode in (0, 1), check.stderr
    facts = json.loads(check.stdout)["facts"]
    assert facts["torch"]["version"] == "2.13.0+cpu", facts["torch"]
    # The tool's own interpreter, not the test venv's.
    assert (
        Path(facts["python"]["prefix"]).resolve()
        == (installs[installer] / "envdoctor").resolve().parent.parent
    )
    smoke = _run(
        [envdoctor, "smoke-train", "--json", "--out", tmp_path / "smoke", *TINY_RUN],
        cwd=tmp_path,
        timeout=300,
        OMP_NUM_THREADS="1",
    )
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    assert json.loads(smoke.stdout)["ok"] is True


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("installer", INSTALLERS)
def test_build_from_install_and_check_inside(installer, installs, tmp_path):
    import docker

    client = docker_client()
    base = debian_python_image(client)
    tag = f"local/envdoctor-install-{installer}:{os.getpid()}"
    command = [installs[installer] / "envdoctor", "build", "--recipe", "torch213-cpu", "--no-torch"]
    command += ["--base-image", base, "--host-ca-certs", "--network", "host", "--tag", tag]
    try:
        result = _run(command, cwd=tmp_path, timeout=400)
        output = result.stdout + result.stderr
        assert result.returncode in (0, 1), output
        assert f"✓ built {tag}" in result.stdout, output
        assert "Inside the image" in result.stdout, output
        assert f"envdoctor  {__version__}" in result.stdout, output
        assert client.images.get(tag).labels["io.envdoctor.version"] == __version__
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
