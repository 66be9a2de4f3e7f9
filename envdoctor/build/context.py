"""The build context: a small in-memory tar with the Dockerfile, envdoctor's source and CA certificates.

Sending the whole checkout (a venv, .git, caches) would make every build upload hundreds of MB;
the image needs only what ``pip install`` of envdoctor needs. Extra CA certificates (a
TLS-inspecting proxy, as on machines whose pip fails with ``CERTIFICATE_VERIFY_FAILED``) travel
in the context as files: nothing is passed as a build argument, so nothing secret can end up in
the image history. Local wheels (``--wheels``) travel the same way, under ``wheels/``; with them
the context can be GBs, so it is spooled to a temporary file, not held in memory.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from envdoctor.build.dockerfile import CERT_DIR, SOURCE_FILES, SOURCE_PATHS, WHEEL_DIR
from envdoctor.errors import EnvdoctorError

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


class ContextError(EnvdoctorError):
    """The context cannot be assembled (no source tree, an unreadable certificate): one line."""


def source_root() -> Path:
    """The envdoctor source tree this envdoctor runs from (a checkout or an editable install).

    An installed wheel has no pyproject.toml next to the package, so it cannot be rebuilt inside
    an image: say so instead of building something else.
    """
    import envdoctor

    root = Path(envdoctor.__file__).resolve().parent.parent
    missing = [name for name in SOURCE_FILES if not (root / name).is_file()]
    if missing:
        raise ContextError(
            f"{root}: {', '.join(missing)} not found: `envdoctor build` needs the envdoctor source tree "
            "(run it from a checkout, or after `pip install -e .`)"
        )
    return root


def host_ca_certs(directory: Path = HOST_CA_DIR) -> list[Path]:
    """The extra CA certificates this host trusts (``*.crt`` under /usr/local/share/ca-certificates)."""
    return sorted(directory.rglob("*.crt")) if directory.is_dir() else []


def read_ca_certs(paths: Iterable[Path]) -> dict[str, bytes]:
    """Certificate files -> ``{context name: PEM bytes}``; a missing or non-PEM file is a ContextError.

    Names get an index prefix (two ``ca.crt`` from different folders must not collide) and the
    ``.crt`` suffix that update-ca-certificates requires.
    """
    certs: dict[str, bytes] = {}
    for i, path in enumerate(paths):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ContextError(f"{path}: cannot read CA certificate ({exc.strerror or exc})") from None
        if PEM_MARKER not in data:
            raise ContextError(f"{path}: not a PEM certificate (no '{PEM_MARKER.decode()}' line)")
        certs[f"{i:02d}-{Path(path).stem}.crt"] = data
    return certs


def find_wheels(directory: Path) -> list[Path]:
    """The ``*.whl`` files directly in ``directory``; a ContextError when there is none to use."""
    if not directory.is_dir():
        raise ContextError(f"{directory}: not a folder (--wheels wants a folder of *.whl files)")
    wheels = sorted(p for p in directory.glob("*.whl") if p.is_file())
    if not wheels:
        raise ContextError(f"{directory}: no *.whl files in it")
    return wheels


def make_context(
    dockerfile: str,
    root: Path | None = None,
    certs: dict[str, bytes] | None = None,
    paths: Sequence[str] = (*SOURCE_FILES, *SOURCE_PATHS),
    wheels: Sequence[Path] = (),
) -> BinaryIO:
    """An uncompressed tar of the Dockerfile, ``paths`` from ``root``, ``certs`` under ca-certificates/
    and ``wheels`` under wheels/, in a temporary file (gone when closed) positioned at its start.

    ``root=None`` means no source files (a context for a hand-written Dockerfile).
    Symlinks are kept as symlinks (``envdoctor/recipes_data -> ../recipes`` resolves in the image).
    """
    buf = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the caller closes it)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode("utf-8"))
        if root is not None:
            for rel in paths:
                tar.add(root / rel, arcname=rel, filter=_skip_caches)
        for name, data in (certs or {}).items():
            _add_bytes(tar, f"{CERT_DIR}/{name}", data)
        for wheel in wheels:
            tar.add(wheel, arcname=f"{WHEEL_DIR}/{wheel.name}", filter=_root_owned)
    buf.seek(0)
    return buf


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = set(Path(info.name).parts)
    if parts & SKIPPED_PARTS or info.name.endswith(".pyc"):
        return None
    return _root_owned(info)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
