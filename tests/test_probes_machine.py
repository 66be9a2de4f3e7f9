"""Real probes on this machine (no GPU, no NVIDIA driver) and on planted trees for the file checks."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import threading

import pytest
from probes_helpers import repo_env

from envdoctor.facts import Facts
from envdoctor.probes import _run_concurrently, collect, cuda, docker_engine, system


@pytest.fixture(scope="module")
def quick_facts() -> Facts:
    return collect(quick=True)


def test_collect_quick_fills_every_section_without_errors(quick_facts: Facts) -> None:
    facts = quick_facts
    assert facts.origin == "probe" and facts.envdoctor_version
    assert facts.probe_errors == {}
    assert set(facts.timings) == {"target", "system", "nvidia", "cuda", "docker", "toolchain"}
    assert facts.torch.status == "skipped"
    assert facts.python.executable == sys.executable
    assert facts.python.version == platform.python_version()
    assert facts.system.arch == platform.machine()
    assert facts.system.glibc == platform.libc_ver()[1]
    assert facts.system.cpu_count and facts.system.cpu_count >= 1
    assert facts.system.memory_total_mib and facts.system.memory_total_mib > 100
    assert facts.system.shm_size_mib is not None
    assert facts.packages.all and facts.packages.all["packaging"]
    assert facts.packages.unmet is not None


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="this machine has an NVIDIA driver")
def test_no_driver_is_driver_missing(quick_facts: Facts) -> None:
    assert quick_facts.nvidia.error == "driver-missing"
    assert quick_facts.nvidia.gpus is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH")
def test_nvcc_release_matches_nvcc_itself(quick_facts: Facts) -> None:
    banner = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, timeout=30).stdout
    assert quick_facts.cuda.nvcc_version is not None
    assert f"release {quick_facts.cuda.nvcc_version}," in banner


def test_ld_so_cache_parser_agrees_with_ldconfig() -> None:
    parsed = cuda.read_ld_so_cache()
    if parsed is None:
        pytest.skip("this glibc's ld.so.cache is in an older format")
    listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    expected = re.findall(r"^\s*(\S+) \(.*\) => (\S+)$", listed, flags=re.M)
    assert sorted(parsed) == sorted(expected)


def test_ldconfig_libraries_are_found_with_version(tmp_path) -> None:
    libs = cuda.ldconfig_libraries(5)
    for entry in cuda.read_ld_so_cache() or []:
        if cuda.LIBRARY_RE.match(entry[0]):
            assert any(lib.path == entry[1] and lib.origin == "ldconfig" for lib in libs)


def test_ld_library_path_scan(tmp_path) -> None:
    (tmp_path / "libcudnn.so.9.1.0").write_bytes(b"")
    (tmp_path / "libcudnn.so.9").symlink_to("libcudnn.so.9.1.0")
    (tmp_path / "libcudnn_ops.so.9").write_bytes(b"")
    libs = cuda.library_path_libraries(f"/nonexistent:{tmp_path}:{tmp_path}")
    assert [(lib.name, lib.version, lib.origin) for lib in libs] == [
        ("libcudnn.so.9", "9.1.0", "LD_LIBRARY_PATH"),
        ("libcudnn.so.9.1.0", "9.1.0", "LD_LIBRARY_PATH"),
    ]


def test_reported_env_is_an_allow_list() -> None:
    env = {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_DEBUG": "INFO",
        "NCCL_SECRET_KEY": "s3cret",
        "NCCL_IB_TOKEN": "tok",
        "HF_TOKEN": "hf_abc",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "HOME": "/root",
        "DOCKER_HOST": "tcp://user:pw@host:2376",
    }
    assert system.reported_env(env) == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "DOCKER_HOST": "tcp://***@host:2376",
        "NCCL_DEBUG": "INFO",
    }


@pytest.mark.parametrize(
    ("files", "environ", "kind"),
    [
        ({".dockerenv": ""}, {}, "docker"),
        ({"run/.containerenv": ""}, {}, "podman"),
        ({"proc/1/cgroup": "0::/kubepods/burstable/pod1/abc\n"}, {}, "kubernetes"),
        ({"proc/1/cgroup": "12:pids:/docker/0123abcd\n"}, {}, "docker"),
        ({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
        ({}, {"container": "podman"}, "podman"),
        (
            {"proc/self/mountinfo": "612 540 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/a\n"},
            {},
            "unknown",
        ),
        (
            {"proc/1/cgroup": "0::/\n", "proc/self/mountinfo": "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"},
            {},
            None,
        ),
    ],
)
def test_container_kind_from_planted_trees(tmp_path, files, environ, kind) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert system.container_kind(str(tmp_path), environ) == kind


def test_cdi_spec_dirs_lists_dirs_with_specs(tmp_path) -> None:
    (tmp_path / "etc-cdi").mkdir()
    (tmp_path / "etc-cdi" / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    (tmp_path / "empty").mkdir()
    dirs = (str(tmp_path / "etc-cdi"), str(tmp_path / "empty"), str(tmp_path / "missing"))
    assert docker_engine.cdi_spec_dirs(dirs) == [str(tmp_path / "etc-cdi")]


def test_docker_without_socket_is_no_engine_and_never_imports_the_sdk() -> None:
    code = (
        "import sys; from envdoctor.probes import docker_engine\n"
        "f = docker_engine.probe(2, {'DOCKER_HOST': 'unix:///nonexistent/docker.sock'})\n"
        "print(f.status, 'docker' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/", env=repo_env()
    )
    assert out.stdout.split() == ["no-engine", "False"], out.stderr


def test_docker_engine_refusing_connections_is_an_error_not_a_crash(tmp_path) -> None:
    import socket

    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # bound but not listening: connections are refused
    try:
        facts = docker_engine.probe(2, {"DOCKER_HOST": f"unix://{path}"})
    finally:
        server.close()
    assert facts.status in ("no-engine", "error")
    assert facts.error


def test_a_crashing_and_a_hanging_probe_become_one_line_each() -> None:
    stop = threading.Event()

    def crash() -> None:
        raise KeyError("boom")

    facts = Facts()
    results = _run_concurrently(
        {"crash": (crash, 5), "hang": (lambda: stop.wait(30), 0.5), "fine": (lambda: 42, 5)}, facts
    )
    stop.set()
    assert facts.probe_errors == {"crash": "KeyError: 'boom'", "hang": "timed out after 0.5s"}
    assert results["fine"] == 42 and "hang" not in results
    assert set(facts.timings) == {"crash", "hang", "fine"}


def test_fixture_engine_info_over_a_unix_socket(tmp_path) -> None:
    """A stand-in engine answering GET /info the way Docker does on a host with the NVIDIA runtime."""
    import http.server
    import json
    import socketserver

    info = {"ServerVersion": "28.2.2", "DefaultRuntime": "runc", "Runtimes": {"nvidia": {}, "runc": {}}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = json.dumps(info).encode() if self.path == "/info" else b"{}"
            self.send_response(200 if self.path == "/info" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return "local"

        def log_message(self, *args) -> None:
            pass

    path = str(tmp_path / "docker.sock")
    with socketserver.UnixStreamServer(path, Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        facts = docker_engine.probe(5, {"DOCKER_HOST": f"unix://{path}"})
        server.shutdown()
    assert (facts.status, facts.server_version, facts.default_runtime, facts.runtimes) == (
        "ok",
        "28.2.2",
        "runc",
        ["nvidia", "runc"],
    )
