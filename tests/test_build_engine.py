"""The build machinery against a real Docker engine, on a 2 MB busybox image (about a second per build)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from build_helpers import busybox_image, docker_client, engine_objects
from cli_helpers import invoke

from envdoctor.errors import UsageError
from envdoctor.findings import Severity
from envdoctor.image.context import make_context
from envdoctor.image.engine import container_gpu_finding, probe_container_gpu
from envdoctor.image.stream import build_image
from envdoctor.image.validate import run_in_container

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client():
    return docker_client()


@pytest.fixture(scope="module")
def busybox(client):
    return busybox_image(client)


@pytest.fixture
def unchanged_engine(client):
    """Asserts that the test leaves no image (intermediate layers included) and no container behind."""
    before = engine_objects(client)
    yield
    images, containers = engine_objects(client)
    assert images - before[0] == set(), "images left behind"
    assert containers - before[1] == set(), "containers left behind"


def test_successful_build_reports_steps_layers_and_image_id(client, busybox, unchanged_engine):
    events = []
    dockerfile = f"FROM {busybox}\nRUN echo building; echo to-stderr >&2\nLABEL io.envdoctor.test=ok\n"
    result = build_image(
        client,
        make_context(dockerfile),
        "local/envdoctor-test:ok",
        network_mode="none",
        on_event=events.append,
    )
    try:
        assert result.ok and result.image_id.startswith("sha256:")
        assert result.steps == [
            f"FROM {busybox}",
            "RUN echo building; echo to-stderr >&2",
            "LABEL io.envdoctor.test=ok",
        ]
        assert [(e.step, e.total) for e in events if e.kind == "step"] == [(1, 3), (2, 3), (3, 3)]
        output = [e.text for e in events if e.kind == "output"]
        assert "building" in output and "to-stderr" in output  # stderr arrives without its ANSI colour
        image = client.images.get("local/envdoctor-test:ok")
        assert image.id == result.image_id and image.labels["io.envdoctor.test"] == "ok"
    finally:
        client.images.remove("local/envdoctor-test:ok")


def test_multi_stage_build_leaves_no_stage_image_behind(client, busybox, unchanged_engine):
    # What the --wheels Dockerfile does: a stage holds a big file, the image copies only a result out.
    dockerfile = (
        f"FROM {busybox} AS base\nRUN echo base > /tmp/base\n"
        "FROM base AS venv\nRUN echo wheel > /tmp/wheel && echo venv > /tmp/venv\n"
        "FROM base\nCOPY --from=venv /tmp/venv /opt/venv\n"
    )
    before = {i.id for i in client.images.list(filters={"dangling": True})}
    result = build_image(client, make_context(dockerfile), "local/envdoctor-test:stages", network_mode="none")
    try:
        assert result.ok, result.failure
        assert len(result.stage_ends) == 2  # the end of "base" (still used) and of "venv" (removed)
        assert result.removed == [result.stage_ends[1]]
        assert {i.id for i in client.images.list(filters={"dangling": True})} == before
        run = run_in_container(
            client, "local/envdoctor-test:stages", ["cat", "/opt/venv", "/tmp/wheel"], ulimits=False
        )
        assert run.stdout == "venv\n" and "/tmp/wheel" in run.stderr and run.exit_code == 1
    finally:
        client.images.remove("local/envdoctor-test:stages")


def test_failing_run_step_reports_exit_code_and_log_tail_and_cleans_up(client, busybox, unchanged_engine):
    dockerfile = f"FROM {busybox}\nRUN echo first > /tmp/a\nRUN echo line-1; echo line-2 >&2; exit 3\n"
    result = build_image(client, make_context(dockerfile), "local/envdoctor-test:fail", network_mode="none")
    failure = result.failure
    assert failure is not None and failure.kind == "step-failed"
    assert (failure.step, failure.exit_code) == (3, 3)
    assert failure.instruction == "RUN echo line-1; echo line-2 >&2; exit 3"
    assert sorted(failure.log_tail) == ["line-1", "line-2"]  # stdout and stderr interleave freely
    assert "returned a non-zero code: 3" in failure.message
    assert result.removed, "the layer of step 2 should have been removed"
    assert busybox_image(client) == busybox  # the base image survives the cleanup


def test_missing_base_image_and_rejected_dockerfile(client, busybox, unchanged_engine):
    missing = build_image(
        client, make_context("FROM local/missing:none\nRUN true\n"), "local/x:y", network_mode="none"
    )
    assert missing.failure.kind == "base-image" and missing.failure.step == 1
    rejected = build_image(
        client, make_context(f"FROM {busybox}\nRUNN true\n"), "local/x:y", network_mode="none"
    )
    assert rejected.failure.kind == "rejected" and "unknown instruction: RUNN" in rejected.failure.message


def test_cli_build_failures_are_one_line_with_exit_2_or_step_report(
    client, busybox, unchanged_engine, tmp_path
):
    missing = invoke(["build", "--recipe", "torch213-cpu", "--base-image", "local/missing:none"])
    assert missing.exit_code == 2, missing.output
    assert "base image local/missing:none is not available locally and cannot be pulled" in missing.output
    # The recipe's apt step cannot run on busybox: the step, its exit code and its log are shown.
    failed = invoke(
        ["build", "--recipe", "torch213-cpu", "--no-torch", "--base-image", busybox, "--network", "none"]
    )
    assert failed.exit_code == 1, failed.output
    assert "RUN apt-get update" in failed.output and "failed with exit code 127" in failed.output
    assert "apt-get: not found" in failed.output


def test_gpu_probe_without_toolkit_becomes_container_gpu_finding(client, busybox, unchanged_engine):
    probe = probe_container_gpu(client, busybox)
    if probe.ok:
        pytest.skip("this engine gives containers a GPU: the no-toolkit path cannot be exercised")
    assert probe.status == "no-toolkit", probe.detail
    assert 'could not select device driver "" with capabilities: [[gpu]]' in probe.detail
    finding = container_gpu_finding(probe, needs_gpu=True)
    assert finding.id == "container-gpu" and finding.severity is Severity.ERROR
    assert probe.detail in finding.message and "nvidia-ctk runtime configure" in finding.fix
    assert container_gpu_finding(probe, needs_gpu=False).severity is Severity.INFO


def test_run_in_container_reports_exit_code_output_and_timeout(client, busybox, unchanged_engine):
    run = run_in_container(client, busybox, ["sh", "-c", "echo out; echo err >&2; exit 4"], ulimits=False)
    assert (run.exit_code, run.stdout, run.stderr, run.error) == (4, "out\n", "err\n", None)
    hung = run_in_container(client, busybox, ["sleep", "30"], timeout=2, ulimits=False)
    assert hung.exit_code is None and "timed out after 2 s" in hung.error


def test_no_engine_is_a_one_line_error(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/missing.sock"}
    result = _cli_build(env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"envdoctor: error: no Docker engine: {tmp_path}/missing.sock does not exist "
        "(start dockerd, or point DOCKER_HOST at a running engine)"
    )


def test_permission_denied_on_the_socket_is_a_one_line_error(tmp_path):
    """A socket owned by nobody, mode 0600, and the test process without CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE")
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o600)
    tmp_path.chmod(0o755)
    try:
        env = {**os.environ, "DOCKER_HOST": f"unix://{path}"}
        result = _cli_build(
            env, ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
        )
    finally:
        server.close()
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"envdoctor: error: permission denied on {path}: add your user to the")


def _cli_build(env: dict[str, str], prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [*(prefix or []), sys.executable, "-m", "envdoctor", "build", "--recipe", "torch213-cpu"]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_rebuilding_a_tag_removes_the_image_it_replaced(client, busybox, unchanged_engine):
    tag = "local/envdoctor-test:retag"
    first = build_image(
        client, make_context(f"FROM {busybox}\nRUN echo one > /tmp/v\n"), tag, network_mode="none"
    )
    second = build_image(
        client, make_context(f"FROM {busybox}\nRUN echo two > /tmp/v\n"), tag, network_mode="none"
    )
    try:
        assert first.ok and second.ok and first.image_id != second.image_id
        assert second.removed == [first.image_id]
        assert first.image_id not in {i["Id"] for i in client.api.images(all=True)}
    finally:
        client.images.remove(tag)


class _Recorder:
    """A Progress that keeps what the pipeline reports."""

    def __init__(self) -> None:
        self.events: list = []
        self.failures: list = []

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def event(self, event) -> None:
        self.events.append(event)

    def fail(self, failure) -> None:
        self.failures.append(failure)


def test_pipeline_outcome_of_a_built_image_without_envdoctor_and_of_a_failed_step(
    client, busybox, unchanged_engine
):
    """The pipeline's outcome says what happened; ``build`` maps it to the exit code (ok -> 0, else 1)."""
    import dataclasses

    from envdoctor.image import pipeline

    prepared = pipeline.prepare("torch213-cpu", tag="local/envdoctor-test:pipeline", network="none")
    built = dataclasses.replace(prepared, dockerfile=f"FROM {busybox}\nRUN echo built\n")
    progress = _Recorder()
    try:
        outcome = pipeline.build(client, built, progress)
        assert outcome.result.ok and progress.failures == []
        assert [e.step for e in progress.events if e.kind == "step"] == [1, 2]
        # busybox has no envdoctor: the image is built, but its check cannot run inside.
        assert outcome.validation is not None and not outcome.validation.ok and outcome.validation.error
        assert outcome.smoke is None and not outcome.ok
    finally:
        client.images.remove("local/envdoctor-test:pipeline")

    failing = dataclasses.replace(prepared, dockerfile=f"FROM {busybox}\nRUN exit 5\n")
    progress = _Recorder()
    outcome = pipeline.build(client, failing, progress)
    assert [f.exit_code for f in progress.failures] == [5]
    assert outcome.result.failure is progress.failures[0]
    assert outcome.validation is None and outcome.gpu_finding is None and not outcome.ok

    with pytest.raises(UsageError, match="base image local/missing:none is not available locally"):
        pipeline.build(client, dataclasses.replace(prepared, base_image="local/missing:none"), _Recorder())


def _slow_apt_image(client, tag: str) -> str:
    """busybox whose ``apt-get`` sleeps: a build of a recipe on it hangs in its first RUN step."""
    import io
    import tarfile

    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "sleep", "rm"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        script = b"#!/bin/sh\nexec sleep 120\n"
        info = tarfile.TarInfo("bin/apt-get")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    repository, _, version = tag.partition(":")
    client.api.import_image(src=buf.getvalue(), repository=repository, tag=version)
    return tag


def test_ctrl_c_during_build_exits_130_and_leaves_no_layer_or_container(client, busybox, unchanged_engine):
    """SIGINT while the recipe's apt step runs: the ARG step's layer is removed once the engine has
    stopped the step (the connection closes with the interrupted read), and build says so in one line."""
    import signal
    import time

    base = _slow_apt_image(client, "local/envdoctor-test:slow-apt")
    command = [sys.executable, "-m", "envdoctor", "build", "--recipe", "torch213-cpu", "--no-torch"]
    command += ["--base-image", base, "--network", "none", "--tag", "local/envdoctor-test:interrupted"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not client.containers.list(filters={"ancestor": base}) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the apt step's container runs
        running = client.containers.list(filters={"ancestor": base})
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
        client.images.remove(base)
    assert running, f"the build never reached its apt step: {stderr}"
    assert child.returncode == 130, stderr
    assert (
        stderr.splitlines()[-1]
        == "✗ interrupted: no container and no layer of an unfinished build is left behind"
    )
