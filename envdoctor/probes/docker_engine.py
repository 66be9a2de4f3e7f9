"""The Docker engine: reachable or not, its version and runtimes (is ``nvidia`` registered?), CDI specs.

The Docker SDK pulls in ``requests`` (a few hundred milliseconds), so it is imported only when an
engine socket exists; without one the status is ``no-engine`` straight away.
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
    if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
        facts.status, facts.error = "no-engine", f"no Docker socket at {host[len('unix://') :]}"
        return facts
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
