"""The Docker engine: reachable or not, its version and runtimes (is ``nvidia`` registered?), CDI specs.

A local engine (a unix socket, the usual case) is asked ``GET /info`` with the standard library: the
Docker SDK pulls in ``requests`` and costs over 100 ms of CPU before the first byte. The SDK is
imported only for other DOCKER_HOST schemes (tcp with TLS, ssh). Without a socket the status is
``no-engine`` straight away.
"""

from __future__ import annotations

import os
from pathlib import Path

from envdoctor.facts import DockerFacts

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
    """The engine's ``GET /info`` over its unix socket (raises OSError when it cannot answer)."""
    import http.client
    import json
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)

    conn = UnixConnection("localhost", timeout=timeout)
    try:
        conn.request("GET", "/info")
        response = conn.getresponse()
        body = response.read()
    except http.client.HTTPException as exc:
        raise OSError(f"not a Docker engine ({type(exc).__name__})") from None
    finally:
        conn.close()
    if response.status != 200:
        raise OSError(f"GET /info answered HTTP {response.status}")
    try:
        info = json.loads(body)
    except ValueError:
        raise OSError("GET /info did not answer JSON") from None
    if not isinstance(info, dict):
        raise OSError("GET /info did not answer an object")
    return info


def socket_error_kind(exc: OSError) -> str:
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


def engine_error_kind(exc: Exception) -> str:
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
