"""``envdoctor build`` end to end on a real engine: Debian + Python base, real apt and pip, check inside.

The CPU recipe is built with ``--no-torch`` (a torch wheel is hundreds of MB) on a Debian bookworm
base made locally by mmdebstrap, trusting this host's extra CA certificates so that pip works
behind a TLS-inspecting proxy. Secrets planted in the environment must not reach the image.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from build_helpers import debian_python_image, docker_client, engine_objects

from envdoctor import __version__
from envdoctor.image.validate import validate_image
from envdoctor.recipes import load_recipe, recipe_hash

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
TAG = "local/envdoctor-e2e:test"
SECRETS = {
    "HF_TOKEN": "hf_planted_secret_4711",
    "PIP_INDEX_URL": "https://user:planted-pw-0815@pypi.invalid/simple",
}


def test_build_cpu_recipe_on_debian_and_check_inside():
    client = docker_client()
    base = debian_python_image(client)
    containers_before = engine_objects(client)[1]
    command = [sys.executable, "-m", "envdoctor", "build", "--recipe", "torch213-cpu", "--no-torch"]
    command += ["--base-image", base, "--host-ca-certs", "--network", "host", "--tag", TAG]
    env = {**os.environ, **SECRETS}
    try:
        result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
        output = result.stdout + result.stderr
        assert result.returncode in (0, 1), output
        assert f"✓ built {TAG}" in result.stdout, output
        assert "Inside the image" in result.stdout, output
        assert "docker run --rm -it --ipc=host" in result.stdout

        image = client.images.get(TAG)
        recipe = load_recipe("torch213-cpu")
        assert image.labels["io.envdoctor.recipe"] == "torch213-cpu"
        assert image.labels["io.envdoctor.recipe-hash"] == recipe_hash(recipe)
        assert image.labels["io.envdoctor.version"] == __version__
        assert image.labels["io.envdoctor.torch"] == "none"
        assert image.attrs["Config"]["User"] == "10001"

        # Facts read from inside a container of the image.
        validation = validate_image(client, TAG)
        assert validation.ok, validation.error
        facts = validation.facts
        assert facts.python.version.startswith("3.11.")  # Debian bookworm's python3.11
        assert facts.python.executable.startswith("/opt/venv/")
        assert facts.system.in_container is True
        assert facts.envdoctor_version == __version__
        assert facts.torch.status == "missing"
        assert f"Python     {facts.python.version}" in result.stdout

        # Nothing from the build environment reached the image: history, config, labels.
        history = json.dumps(client.api.history(TAG))
        config = json.dumps(image.attrs["Config"])
        for value in SECRETS.values():
            assert value not in history and value not in config
        assert "HF_TOKEN" not in config and "PIP_INDEX_URL" not in config
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(TAG, force=True)
    assert engine_objects(client)[1] == containers_before, "containers left behind"
