"""Base images for the build tests, made locally (no registry is reachable from the test machines).

- ``local/busybox:test``: the static busybox in a folder of symlinks, imported as an image (2 MB);
  enough to exercise the SDK (build, run, failures, cleanup) in about a second.
- ``local/deb-py:bookworm``: Debian bookworm with python3 + venv + pip made by mmdebstrap from
  this machine's own apt mirror (~50 s once; the tar is cached under /var/cache/envdoctor-test,
  the image is reused by tag).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

BUSYBOX_TAG = "local/busybox:test"
DEBIAN_TAG = "local/deb-py:bookworm"
CACHE_DIR = Path(os.environ.get("ENVDOCTOR_TEST_CACHE", "/var/cache/envdoctor-test"))
BUSYBOX_APPLETS = ("sh", "true", "false", "echo", "cat", "ls", "sleep", "env", "id")


def docker_client() -> Any:
    """A client for the test engine, or a skip naming why there is none."""
    from envdoctor.image.engine import EngineError, connect

    try:
        return connect(timeout=600)
    except EngineError as exc:
        pytest.skip(f"no usable Docker engine: {exc}")


def busybox_image(client: Any) -> str:
    """``local/busybox:test``, imported from the host's static busybox when missing."""
    import docker

    try:
        client.images.get(BUSYBOX_TAG)
        return BUSYBOX_TAG
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for folder in ("tmp", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    client.api.import_image(src=buf.getvalue(), repository="local/busybox", tag="test")
    return BUSYBOX_TAG


def apt_deb_line(sources_dir: Path = Path("/etc/apt")) -> str:
    """This machine's Debian mirror as a one-line ``deb URI bookworm main`` (mmdebstrap's argument)."""
    for path in [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and "bookworm" in suites.group(1).split():
                    return f"deb {uris.group(1)} bookworm main"
        else:
            line = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
            if line:
                return f"deb {line.group(1)} bookworm main"
    pytest.skip("no Debian bookworm apt source on this machine for mmdebstrap")


def debian_python_image(client: Any) -> str:
    """``local/deb-py:bookworm``: made once per machine, the rootfs tar cached in CACHE_DIR."""
    import docker

    try:
        client.images.get(DEBIAN_TAG)
        return DEBIAN_TAG
    except docker.errors.ImageNotFound:
        pass
    rootfs = CACHE_DIR / "deb-py-bookworm.tar"
    if not rootfs.is_file():
        if shutil.which("mmdebstrap") is None:
            pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap eatmydata)")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = rootfs.with_suffix(".partial.tar")
        hooks = ["--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata"] if shutil.which("eatmydata") else []
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=apt",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                *hooks,
                "bookworm",
                str(partial),
                apt_deb_line(),
            ],
            check=True,
            timeout=600,
        )
        partial.rename(rootfs)
    client.api.import_image(src=str(rootfs), repository="local/deb-py", tag="bookworm")
    return DEBIAN_TAG


def engine_objects(client: Any) -> tuple[set[str], set[str]]:
    """Ids of every image (intermediate layers included) and every container, running or not."""
    images = {i["Id"] for i in client.api.images(all=True)}
    containers = {c["Id"] for c in client.api.containers(all=True)}
    return images, containers
