"""``envdoctor build --wheels DIR --smoke`` end to end: torch from a local wheel, training inside the image.

No PyTorch index is reachable from the test machines (nor from an air-gapped cluster), so torch
comes from the CPU wheel on local disk; its dependencies come from PyPI through the host network
with this host's CA certificates. The recipe is ``torch213-cpu`` without its extra packages
(transformers, accelerate, numpy: 20-40 s of PyPI downloads and 240 MB of image that smoke-train
does not use); with a local torch wheel the pins step still runs, for torch's own dependencies.
The image (1.2 GB) is removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
import yaml
from build_helpers import debian_python_image, docker_client, engine_objects

from envdoctor.image.validate import run_in_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
TAG = "local/envdoctor-wheels-e2e:test"
TORCH_WHEEL = Path(
    os.environ.get(
        "ENVDOCTOR_TORCH_CPU_WHEEL", "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    )
)
SMOKE_CHECKS = {"fp32: no NaN/Inf", "fp32: loss fell", "fp32: accuracy", "fp32: checkpoint round-trip"}
CHECK_ROW = re.compile(r"^\s*([✓✗–])\s+(\S.*?)\s{2,}(\S.*?)\s*$", re.M)


def _wheel_dir(tmp_path: Path) -> Path:
    """A folder holding the torch wheel: a hard link when the file system allows, else a copy."""
    if not TORCH_WHEEL.is_file():
        pytest.skip(
            f"{TORCH_WHEEL} missing (set ENVDOCTOR_TORCH_CPU_WHEEL to a torch 2.13.0+cpu cp311 wheel)"
        )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    try:
        os.link(TORCH_WHEEL, wheels / TORCH_WHEEL.name)
    except OSError:
        shutil.copy(TORCH_WHEEL, wheels / TORCH_WHEEL.name)
    return wheels


def _lean_recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "recipes" / "torch213-cpu.yaml").read_text(encoding="utf-8"))
    data.update(name="torch213-cpu-lean", packages=[])
    path = tmp_path / "torch213-cpu-lean.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _dangling(client: docker.DockerClient) -> set[str]:
    return {i.id for i in client.images.list(filters={"dangling": True})}


def test_build_with_local_torch_wheel_and_smoke_train_inside(tmp_path):
    wheels = _wheel_dir(tmp_path)
    client = docker_client()
    base = debian_python_image(client)
    containers_before, dangling_before = engine_objects(client)[1], _dangling(client)
    command = [sys.executable, "-m", "envdoctor", "build", "--recipe", str(_lean_recipe(tmp_path))]
    command += ["--base-image", base, "--host-ca-certs", "--network", "host", "--tag", TAG]
    command += ["--wheels", str(wheels), "--smoke"]
    try:
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert f"torch from {TORCH_WHEEL.name}" in result.stderr  # not from the (unreachable) PyTorch index

        # The verdict smoke-train printed inside a container of the image.
        smoke = result.stdout.split("smoke-train inside the image", 1)[1]
        assert "torch 2.13.0+cpu on cpu" in smoke, output
        rows = {name: (mark, figure) for mark, name, figure in CHECK_ROW.findall(smoke)}
        assert set(rows) >= SMOKE_CHECKS, output
        assert all(mark == "✓" for mark, _ in rows.values()), output
        accuracy = re.match(r"([\d.]+)% exact match", rows["fp32: accuracy"][1])
        assert accuracy is not None and float(accuracy.group(1)) >= 95.0, output
        assert "✓ smoke-train passed inside the image" in smoke

        image = client.images.get(TAG)
        assert image.labels["io.envdoctor.torch"] == "2.13.0+cpu"
        # No layer of the image holds the wheels: the venv stage that copied them is not in its history,
        # and no file system of the image has them.
        history = " ".join(h["CreatedBy"] for h in client.api.history(TAG))
        assert "/tmp/wheels" not in history and " in /opt/venv" in history, history
        look = "ls -d /tmp/wheels 2>&1; find / -xdev -name 'torch-*.whl' 2>/dev/null"
        run = run_in_container(client, TAG, ["sh", "-c", look], ulimits=False)
        assert run.error is None and "No such file" in run.stdout and ".whl" not in run.stdout, run
        size_mb = image.attrs["Size"] / 1e6
        print(f"\nbuild + validation + smoke: {seconds:.0f} s, image {size_mb:.0f} MB")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(TAG, force=True)
    assert engine_objects(client)[1] == containers_before, "containers left behind"
    assert _dangling(client) <= dangling_before, "dangling images left behind"
