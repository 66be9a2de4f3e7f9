"""The Docker probe's raw ``GET /info`` over a unix socket: the real engine and misbehaving stand-ins."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from probes_helpers import repo_env

from envdoctor.probes import docker_engine

REAL_SOCKET = docker_engine.DEFAULT_SOCKET


@contextmanager
def fake_engine(tmp_path: Path, answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A unix-socket server in a thread that reads one request and lets ``answer`` reply on it."""
    path = str(tmp_path / "engine.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    requests: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    break
                request += data
            requests.append(request)
            answer(conn)
            done.wait(10)  # the connection stays open until the test is over (EOF is the answer's end)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        server.close()
        thread.join(5)
    assert not requests or requests[0].startswith(b"GET /info HTTP/1.0\r\n"), requests


def replying(raw: bytes) -> Callable[[socket.socket], None]:
    """An answer that sends ``raw`` and then closes the write side, as an HTTP/1.0 server does."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)

    return answer


def http(status: str, body: bytes, headers: str = "Content-Type: application/json\r\n") -> bytes:
    return f"HTTP/1.0 {status}\r\n{headers}\r\n".encode() + body


def probe(path: str, timeout: float = 5) -> tuple[str, str | None]:
    facts = docker_engine.probe(timeout, {"DOCKER_HOST": f"unix://{path}"})
    return facts.status, facts.error


def test_fake_engine_answer_in_pieces_is_read_to_eof(tmp_path) -> None:
    info = {"ServerVersion": "27.5.1", "DefaultRuntime": "nvidia", "Runtimes": {"runc": {}, "nvidia": {}}}
    raw = http("200 OK", json.dumps(info).encode())

    def dribble(conn: socket.socket) -> None:
        for i in range(0, len(raw), 7):
            conn.sendall(raw[i : i + 7])
        conn.shutdown(socket.SHUT_WR)

    with fake_engine(tmp_path, dribble) as path:
        assert docker_engine.unix_socket_info(path, 5) == info


def test_fake_engine_non_http_answer_is_not_a_docker_engine(tmp_path) -> None:
    with fake_engine(tmp_path, replying(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as path:
        status, error = probe(path)
    assert status == "error"
    assert error == f"{path}: not a Docker engine (no HTTP status line: [b'SSH-2.0-OpenSSH_9.2'])"


def test_fake_engine_closing_without_an_answer_is_not_a_docker_engine(tmp_path) -> None:
    with fake_engine(tmp_path, replying(b"")) as path:
        assert probe(path) == ("error", f"{path}: not a Docker engine (no complete HTTP answer)")


def test_fake_engine_http_500_names_the_status(tmp_path) -> None:
    with fake_engine(tmp_path, replying(http("500 Internal Server Error", b'{"message":"boom"}'))) as path:
        assert probe(path) == ("error", f"{path}: GET /info answered HTTP 500")


def test_fake_engine_non_json_body(tmp_path) -> None:
    with fake_engine(tmp_path, replying(http("200 OK", b"<html>proxy</html>"))) as path:
        assert probe(path) == ("error", f"{path}: GET /info did not answer JSON")


def test_fake_engine_json_that_is_not_an_object(tmp_path) -> None:
    with fake_engine(tmp_path, replying(http("200 OK", b"[1, 2]"))) as path:
        assert probe(path) == ("error", f"{path}: GET /info did not answer an object")


def test_fake_engine_that_never_answers_times_out(tmp_path) -> None:
    with fake_engine(tmp_path, lambda conn: None) as path:
        start = time.monotonic()
        status, error = probe(path, timeout=0.3)
        elapsed = time.monotonic() - start
    assert (status, error) == ("error", f"{path}: timed out")
    assert 0.25 < elapsed < 2


def test_fake_engine_trickling_forever_is_bounded_by_the_whole_timeout(tmp_path) -> None:
    """A byte every 50 ms never trips a per-read timeout; the deadline covers the whole exchange."""

    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n")
        for _ in range(100):
            time.sleep(0.05)
            try:
                conn.sendall(b"X")
            except OSError:
                return

    with fake_engine(tmp_path, trickle) as path:
        start = time.monotonic()
        status, error = probe(path, timeout=0.5)
        elapsed = time.monotonic() - start
    assert (status, error) == ("error", f"{path}: timed out")
    assert elapsed < 2


def test_fake_engine_endless_answer_is_cut_off(tmp_path) -> None:
    def flood(conn: socket.socket) -> None:
        block = b"x" * 65536
        try:
            while True:
                conn.sendall(block)
        except OSError:
            return

    with fake_engine(tmp_path, flood) as path:
        assert probe(path) == ("error", f"{path}: not a Docker engine (answered over 4 MiB)")


@pytest.mark.docker
def test_real_engine_answers_get_info_over_http_1_0() -> None:
    """The real engine, with no SDK and no http.client: same answer and facts as ``docker info``."""
    cli = shutil.which("docker")
    fmt = "{{.ServerVersion}} {{.DefaultRuntime}} {{json .Runtimes}}"
    done = (
        subprocess.run([cli, "info", "--format", fmt], capture_output=True, text=True, timeout=30)
        if cli
        else None
    )
    if done is None or done.returncode != 0:
        pytest.skip("no running Docker engine (docker info failed)")
    version, runtime, runtimes = done.stdout.strip().split(" ", 2)
    info = docker_engine.unix_socket_info(REAL_SOCKET, 10)
    assert (info["ServerVersion"], info["DefaultRuntime"]) == (version, runtime)
    assert sorted(info["Runtimes"]) == sorted(json.loads(runtimes))
    facts = docker_engine.probe(10, {})
    assert facts.status == "ok", facts.error
    assert (facts.server_version, facts.default_runtime) == (version, runtime)
    assert facts.runtimes == sorted(json.loads(runtimes))
    assert facts.default_runtime in facts.runtimes


def test_probe_imports_neither_http_client_nor_the_sdk(tmp_path) -> None:
    """The point of the raw socket: ``http.client`` (email, ssl, ...) and ``socket`` stay out of ``check``."""
    info = json.dumps({"ServerVersion": "28.0.0", "Runtimes": {"runc": {}}}).encode()
    with fake_engine(tmp_path, replying(http("200 OK", info))) as path:
        code = (
            "import sys; from envdoctor.probes import docker_engine\n"
            f"f = docker_engine.probe(5, {{'DOCKER_HOST': 'unix://{path}'}})\n"
            "print(f.status, f.server_version, *(m in sys.modules for m in ('http.client', 'ssl', 'socket', 'docker')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/", env=repo_env()
        )
    assert out.stdout.split() == ["ok", "28.0.0", "False", "False", "False", "False"], out.stderr
