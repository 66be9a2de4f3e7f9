"""envdoctor as users install it: a wheel with pip, ``pipx install`` and ``uv tool install``.

Each install is real and lives in this test's temporary folder, never next to the checkout, and
runs with the temporary folder as working directory. The wheel is the one ``pip wheel --no-deps``
builds from this checkout. ``build`` from an install must send a wheel rebuilt from the installed
files (an install has no pyproject.toml), the same bytes whichever tool installed it; the image
built from it runs ``check`` inside. ``check`` and ``smoke-train`` run from each install too, with
torch 2.13.0 added the way each tool adds a package (pip, ``pipx inject``, ``uv tool install --with``).
"""

from __future__ import annotations

import base64
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
# pipx and uv live in a venv of their own, off PATH (.ci/run): with uv on PATH, `fix` would run `uv pip`.
TOOLS = ROOT / ".venv-tools" / "bin"
INSTALLERS = ("pip", "pipx", "uv")
# The CPU build from the local wheel folder: a plain torch==2.13.0 from PyPI is the 4 GB CUDA one.
TORCH = "torch==2.13.0+cpu"
LOCAL_WHEELS = "/opt/wheels"
# Enough steps for smoke-train's "loss fell by half" on the tiny model (about 8 s on one thread).
TINY_RUN = [
    "--task",
    "local",
    "--seq-len",
    "16",
    "--batch-size",
    "16",
    "--min-accuracy",
    "0",
    "--steps",
    "120",
]
# Printed from inside the tool's interpreter: the build context `envdoctor build` would send, as a file.
CONTEXT_SCRIPT = """
import sys
from envdoctor.image.context import make_context, own_source
from envdoctor.image.dockerfile import render_dockerfile
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
    top = {".venv", ".venv-tools", ".git", "build", "dist"} if Path(folder) == ROOT else set()
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
    if not (TOOLS / "pipx").exists() or not (TOOLS / "uv").exists():
        reason = "pipx and uv are not installed in .venv-tools (.ci/run installs them)"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("installs")
    bins = {}

    venv = tmp / "pip-venv"
    _ok(_run([sys.executable, "-m", "venv", venv], cwd=tmp))
    pip_install = [venv / "bin/pip", "install", "-q", "--find-links", LOCAL_WHEELS]
    _ok(_run([*pip_install, own_wheel, TORCH], cwd=tmp, timeout=600))
    bins["pip"] = venv / "bin"

    pipx_env = {"PIPX_HOME": str(tmp / "pipx"), "PIPX_BIN_DIR": str(tmp / "pipx-bin")}
    pipx_env["PIPX_MAN_DIR"] = str(tmp / "pipx-man")
    # pipx's uv backend (its default when uv is installed) would not look in the local wheel folder.
    pipx_env["PIPX_DEFAULT_BACKEND"] = "pip"
    _ok(_run([TOOLS / "pipx", "install", own_wheel], cwd=tmp, timeout=600, **pipx_env))
    inject = [TOOLS / "pipx", "inject", f"--pip-args=--find-links {LOCAL_WHEELS}", "envdoctor", TORCH]
    _ok(_run(inject, cwd=tmp, timeout=600, **pipx_env))
    bins["pipx"] = tmp / "pipx-bin"

    uv_env = {"UV_TOOL_DIR": str(tmp / "uv-tools"), "UV_TOOL_BIN_DIR": str(tmp / "uv-bin")}
    uv_env["UV_PYTHON_DOWNLOADS"] = "never"
    install = [TOOLS / "uv", "tool", "install", "--python", sys.executable, "--find-links", LOCAL_WHEELS]
    _ok(_run([*install, "--with", TORCH, own_wheel], cwd=tmp, timeout=600, **uv_env))
    bins["uv"] = tmp / "uv-bin"
    return bins


@pytest.fixture
def target_install(own_wheel: Path, tmp_path: Path) -> Path:
    """envdoctor installed by pip into a plain folder (``--target``, no dependencies): one that
    PYTHONPATH puts first, so a child interpreter of this venv runs the installed copy."""
    target = tmp_path / "site"
    _ok(
        _run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, own_wheel],
            cwd=tmp_path,
        )
    )
    return target


def _own_source_in(site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``own_source()`` in a child that imports envdoctor from ``site``; its wheel goes to cwd."""
    script = (
        "from envdoctor.image.context import own_source; s = own_source(); "
        "open(s.name, 'wb').write(s.build()); print(s.name)"
    )
    return _run([sys.executable, "-c", script], cwd=cwd, PYTHONPATH=str(site))


def test_checkout_sends_its_source_tree():
    from envdoctor.image.context import make_context, own_source

    assert own_source() == ROOT  # this checkout (an editable install)
    with tarfile.open(fileobj=make_context("FROM scratch\n", own_source())) as tar:
        names = tar.getnames()
    assert "pyproject.toml" in names and "envdoctor/image/context.py" in names
    assert not any(n.startswith("envdoctor-wheel/") for n in names)


def test_installed_copy_sends_its_wheel_rebuilt(target_install, own_wheel, tmp_path):
    name = _ok(_own_source_in(target_install, tmp_path)).stdout.strip()
    assert name == own_wheel.name
    rebuilt = (tmp_path / name).read_bytes()
    assert _wheel_files(rebuilt) == _wheel_files(own_wheel.read_bytes())  # the same files, byte for byte
    _ok(_own_source_in(target_install, tmp_path))
    assert (tmp_path / name).read_bytes() == rebuilt  # the same bytes each time: Docker's layer cache holds
    assert _record_mismatches(rebuilt) == []
    # pip installs it.
    again = tmp_path / "again"
    _ok(
        _run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", again, tmp_path / name],
            cwd=tmp_path,
        )
    )
    assert (again / "envdoctor/image/context.py").read_bytes() == (
        target_install / "envdoctor/image/context.py"
    ).read_bytes()


def test_damaged_install_names_the_missing_file(target_install, tmp_path):
    (target_install / "envdoctor/image/engine.py").unlink()
    result = _own_source_in(target_install, tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "envdoctor.image.context.ContextError:" in last and "engine.py: cannot read" in last, result.stderr
    assert "reinstall envdoctor" in last


def test_installed_files_without_dist_info_are_refused(target_install, tmp_path):
    for dist_info in target_install.glob("envdoctor-*.dist-info"):
        shutil.rmtree(dist_info)
    result = _own_source_in(target_install, tmp_path)
    assert result.returncode == 1
    assert "neither an envdoctor source tree (pyproject.toml) nor an installed envdoctor" in result.stderr


def _wheel_files(data: bytes) -> dict[str, str]:
    """``{member: sha256}`` of a wheel, its RECORD left out (its lines differ by order only)."""
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        return {
            name: hashlib.sha256(wheel.read(name)).hexdigest()
            for name in wheel.namelist()
            if not name.endswith(".dist-info/RECORD")
        }


def _record_mismatches(data: bytes) -> list[str]:
    """Members whose RECORD line (sha256, size) does not match them, and members it does not list."""
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        (record,) = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
        lines = {line.split(",")[0]: line for line in wheel.read(record).decode().splitlines()}
        wrong = [record] if lines.pop(record, None) != f"{record},," else []
        for name in wheel.namelist():
            if name == record:
                continue
            member = wheel.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(member).digest()).rstrip(b"=").decode()
            if lines.pop(name, None) != f"{name},sha256={digest},{len(member)}":
                wrong.append(name)
    return wrong + sorted(lines)


def _context(bin_dir: Path, tmp_path: Path) -> tarfile.TarFile:
    """The build context the install's envdoctor makes, from the install's own interpreter."""
    python = (bin_dir / "envdoctor").resolve().parent / "python"
    out = tmp_path / f"context-{bin_dir.name}.tar"
    _ok(_run([python, "-c", CONTEXT_SCRIPT, out], cwd=tmp_path))
    return tarfile.open(out)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.fixture(scope="module")
def image_tags():
    """Tags to remove once every build of the module ran: until then the three builds share layers
    (the same wheel from each install), so only the first pays for the venv and envdoctor steps."""
    import docker

    tags: list[str] = []
    yield tags
    client = docker_client()
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("installer", INSTALLERS)
def test_build_from_install_and_check_inside(installer, installs, image_tags, tmp_path):
    client = docker_client()
    base = debian_python_image(client)
    tag = f"local/envdoctor-install-{installer}:{os.getpid()}"
    image_tags.append(tag)
    command = [installs[installer] / "envdoctor", "build", "--recipe", "torch213-cpu", "--no-torch"]
    command += ["--base-image", base, "--host-ca-certs", "--network", "host", "--tag", tag]
    result = _run(command, cwd=tmp_path, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    assert f"✓ built {tag}" in result.stdout, output
    assert "COPY envdoctor-wheel/ /opt/envdoctor-src/" in result.stderr, output
    assert "Inside the image" in result.stdout, output
    assert f"envdoctor  {__version__}" in result.stdout, output
    assert client.images.get(tag).labels["io.envdoctor.version"] == __version__
