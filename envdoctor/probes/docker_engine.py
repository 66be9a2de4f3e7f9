"""The Docker engine: reachable or not, its version and runtimes (is ``nvidia`` registered?), CDI specs.

Touches: one ``GET /info`` to the Docker engine (its unix socket, or the DOCKER_HOST it names). Starts
no container, writes nothing.

A local engine (a unix socket, the usual case) is asked ``GET /info`` with the standard library: the
Docker SDK pulls in ``requests`` and costs over 100 ms of CPU before the first byte. The SDK is
imported only for other DOCKER_HOST schemes (tcp with TLS, ssh). Without a socket the status is
``no-engine`` straight away.
"""

from __future__ import annotations

import os
from pathlib import Path

from envdoctor.facts import DockerFacts, DockerStatus

DEFAULT_SOCKET = "/var/run/docker.sock"
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


def probe(timeout: float, environ: dict[str, str] | os._Environ | None = None) -> DockerFacts:
    environ = os.environ if environ is None else environ
    facts = DockerFacts(cdi_spec_dirs=cdi_spec_dirs())
    host = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if host.startswith("unix://"):
        socket_path = host[len("unix://") :]
        if not os.path.exists(socket_path):
            facts.status, facts.error = "no-engine", f"no Docker socket at {socket_path}"
            return facts
        try:
            info = unix_socket_info(socket_path, timeout)
        except OSError as exc:
            facts.status, facts.error = socket_error_kind(exc), f"{socket_path}: {_one_line(exc)}"
            return facts
        return _with_info(facts, info)
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        facts.status, facts.error = "sdk-missing", f"the docker Python SDK is not importable ({exc})"
        return facts
    client = None
    try:
        client = docker.from_env(timeout=max(int(timeout), 1), environment=dict(environ))
        info = client.info()
    except DockerException as exc:
        facts.status, facts.error = engine_error_kind(exc), _one_line(exc)
        return facts
    finally:
        if client is not None:
            client.close()
    return _with_info(facts, info)


def unix_socket_info(path: str, timeout: float) -> dict:
    """The engine's ``GET /info`` over its unix socket (raises OSError when it cannot answer).

    A raw socket rather than ``http.client``, whose imports (email, ssl, ...) cost more CPU than
    the whole exchange. The request is HTTP/1.0, so the engine answers without chunked encoding
    (which HTTP/1.1 forbids towards a 1.0 client) and closes the connection: the body is all
    bytes up to EOF. ``timeout`` bounds the whole exchange, not each read.
    """
    import json

    head, body = _http_get(path, "/info", timeout)
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise OSError(f"not a Docker engine (no HTTP status line: {status_line[:3]!r})")
    status = int(status_line[1])
    if status != 200:
        raise OSError(f"GET /info answered HTTP {status}")
    try:
        info = json.loads(body)
    except ValueError:
        raise OSError("GET /info did not answer JSON") from None
    if not isinstance(info, dict):
        raise OSError("GET /info did not answer an object")
    return info


# An engine's /info is a few KiB; anything past this is not a Docker engine.
_MAX_ANSWER = 4 << 20


def _http_get(path: str, target: str, timeout: float) -> tuple[bytes, bytes]:
    """Send an HTTP/1.0 GET over the unix socket ``path``; return (headers, body) read up to EOF.

    ``_socket`` is the C module under ``socket``: the wrapper's only cost here would be its import
    (about 3 ms, turning constants into enums), and nothing else in ``check`` imports it.
    """
    import _socket
    import time

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_ANSWER:
                raise OSError(f"not a Docker engine (answered over {_MAX_ANSWER >> 20} MiB)")
    finally:
        sock.close()
    answer = b"".join(chunks)
    head, blank, body = answer.partition(b"\r\n\r\n")
    if not blank:
        raise OSError("not a Docker engine (no complete HTTP answer)")
    return head, body


def socket_error_kind(exc: OSError) -> DockerStatus:
    if isinstance(exc, PermissionError):
        return "permission-denied"
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return "no-engine"
    return "error"


def _with_info(facts: DockerFacts, info: dict) -> DockerFacts:
    facts.status = "ok"
    facts.server_version = info.get("ServerVersion")
    facts.runtimes = sorted(info.get("Runtimes") or {})
    facts.default_runtime = info.get("DefaultRuntime")
    return facts


def engine_error_kind(exc: Exception) -> DockerStatus:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return "permission-denied"
    if "FileNotFoundError" in text or "Connection refused" in text or "No such file" in text:
        return "no-engine"
    return "error"


def cdi_spec_dirs(dirs: tuple[str, ...] = CDI_DIRS) -> list[str]:
    """CDI directories holding at least one spec (*.yaml / *.json), where ``nvidia.com/gpu`` is defined."""
    found = []
    for directory in dirs:
        path = Path(directory)
        try:
            if any(p.suffix in (".yaml", ".yml", ".json") for p in path.iterdir()):
                found.append(directory)
        except OSError:
            continue
    return found


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
