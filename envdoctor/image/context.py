"""The build context: a small tar with the Dockerfile, envdoctor (source or wheel) and CA certificates.

Touches: reads the source tree or the installed distribution's files, the certificates and wheels
named; writes one temporary file (the context tar, deleted when closed).

Sending the whole checkout (a venv, .git, caches) would make every build upload hundreds of MB;
the image needs only what ``pip install`` of envdoctor needs. Extra CA certificates (a
TLS-inspecting proxy, as on machines whose pip fails with ``CERTIFICATE_VERIFY_FAILED``) travel
in the context as files: nothing is passed as a build argument, so nothing secret can end up in
the image history. Local wheels (``--wheels``) travel the same way, under ``wheels/``; with them
the context can be GBs, so it is spooled to a temporary file, not held in memory.

envdoctor itself comes from where this envdoctor runs: a checkout or an editable install sends its
source tree; an installed distribution (``pip install``, ``pipx install``, ``uv tool install``) sends
a wheel rebuilt from the files its RECORD lists, so the image gets the envdoctor that runs here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from envdoctor.errors import EnvdoctorError
from envdoctor.image.dockerfile import CERT_DIR, OWN_WHEEL_DIR, SOURCE_FILES, SOURCE_PATHS, WHEEL_DIR

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


class ContextError(EnvdoctorError):
    """The context cannot be assembled (no source tree, an unreadable certificate): one line."""


def source_root() -> Path:
    """The envdoctor source tree this envdoctor runs from (a checkout or an editable install).

    A ContextError when there is none (an installed wheel has no pyproject.toml next to the package).
    """
    import envdoctor

    root = Path(envdoctor.__file__).resolve().parent.parent
    missing = [name for name in SOURCE_FILES if not (root / name).is_file()]
    if missing:
        raise ContextError(f"{root}: {', '.join(missing)} not found: not an envdoctor source tree")
    return root


# Installer records that describe one installation, not the distribution: never part of a wheel.
INSTALL_RECORDS = {
    "RECORD",
    "RECORD.jws",
    "RECORD.p7s",
    "INSTALLER",
    "REQUESTED",
    "direct_url.json",
    "uv_cache.json",
}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: the same files give the same wheel bytes


@dataclass(frozen=True)
class InstalledWheel:
    """The installed envdoctor distribution, to be rebuilt as a wheel from the files its RECORD lists."""

    dist: metadata.Distribution

    @property
    def name(self) -> str:
        """``envdoctor-0.1.0-py3-none-any.whl``: the tags of the wheel it was installed from."""
        wheel_meta = self.dist.read_text("WHEEL") or ""
        tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
        return f"envdoctor-{self.dist.version}-{tags[0] if tags else 'py3-none-any'}.whl"

    def build(self) -> bytes:
        """The wheel's bytes: the installed files (no bytecode, nothing outside site-packages, no
        installer records) and a new RECORD, in a fixed order with fixed dates.

        A file the RECORD lists but that is gone is a ContextError (a damaged install).
        """
        files = sorted(
            (f for f in self.dist.files or () if _wheel_member(f)),
            key=lambda f: (f.parts[0].endswith(".dist-info"), str(f)),
        )
        if not files:
            raise ContextError(f"{self.dist.locate_file('')}: envdoctor's RECORD lists no files")
        dist_info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
        if dist_info is None:
            raise ContextError(f"{self.dist.locate_file('')}: envdoctor's RECORD lists no .dist-info")
        buf = io.BytesIO()
        record = []
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as wheel:
            for rel in files:
                path = Path(str(self.dist.locate_file(rel)))
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise ContextError(
                        f"{path}: cannot read an installed envdoctor file ({exc.strerror or exc}): "
                        "reinstall envdoctor"
                    ) from None
                _add_zip_member(wheel, rel.as_posix(), data, path.stat().st_mode)
                record.append(f"{rel.as_posix()},sha256={_record_hash(data)},{len(data)}")
            record.append(f"{dist_info}/RECORD,,")
            _add_zip_member(wheel, f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644)
        return buf.getvalue()


def own_source() -> Path | InstalledWheel:
    """What the image's envdoctor is built from: this envdoctor's source tree if it runs from one,
    else the installed distribution that holds the running package.

    The distribution is looked up next to the running package, not on sys.path at large: another
    envdoctor installed elsewhere must not be the one that goes into the image.
    """
    import envdoctor

    try:
        return source_root()
    except ContextError:
        pass
    site = Path(envdoctor.__file__).resolve().parent.parent
    dist = next(iter(metadata.distributions(name="envdoctor", path=[str(site)])), None)
    if dist is None:
        raise ContextError(
            f"{site}: neither an envdoctor source tree (pyproject.toml) nor an installed envdoctor "
            "(envdoctor-*.dist-info): reinstall envdoctor"
        )
    return InstalledWheel(dist)


def _wheel_member(rel: metadata.PackagePath) -> bool:
    """Whether an installed file belongs in the rebuilt wheel: scripts (outside site-packages) are
    made again from entry_points.txt, bytecode by the installer in the image."""
    return (
        rel.parts[0] != ".."
        and "__pycache__" not in rel.parts
        and rel.suffix != ".pyc"
        and not (rel.parts[0].endswith(".dist-info") and rel.name in INSTALL_RECORDS)
    )


def _add_zip_member(wheel: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | (0o755 if mode & 0o111 else 0o644)) << 16
    wheel.writestr(info, data)


def _record_hash(data: bytes) -> str:
    """A RECORD hash: urlsafe base64 of the sha256 digest without padding (PEP 376/427)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


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
    root: Path | InstalledWheel | None = None,
    certs: dict[str, bytes] | None = None,
    paths: Sequence[str] = (*SOURCE_FILES, *SOURCE_PATHS),
    wheels: Sequence[Path] = (),
) -> BinaryIO:
    """An uncompressed tar of the Dockerfile, envdoctor, ``certs`` under ca-certificates/ and
    ``wheels`` under wheels/, in a temporary file (gone when closed) positioned at its start.

    envdoctor is ``paths`` from a source tree ``root``, or, for an InstalledWheel, its rebuilt
    wheel under envdoctor-wheel/; ``root=None`` means neither (a context for a hand-written
    Dockerfile). Symlinks are kept as symlinks (``envdoctor/recipes_data -> ../recipes`` resolves
    in the image).
    """
    buf = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the caller closes it)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode("utf-8"))
        if isinstance(root, InstalledWheel):
            _add_bytes(tar, f"{OWN_WHEEL_DIR}/{root.name}", root.build())
        elif root is not None:
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
