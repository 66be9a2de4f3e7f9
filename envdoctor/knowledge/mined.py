"""Knowledge mined from the packages themselves (``tools/mine_api.py``): public names per release, wheels.

* ``api_index.json.gz``: for torch, transformers, numpy, accelerate, peft, torchvision, diffusers and
  huggingface_hub, the mined releases (one per minor release) and, for each public dotted name, the
  spans of those releases that have it (``[first, last, first, last...]`` indices); each
  distribution's entry is a JSON text of its own, decoded when first read (a torch name does not
  decode transformers' 11 MB of names: 0.09 s instead of 0.4 s).
* ``wheel_tags.json.gz``: for each release of torch, torchvision, torchaudio, xformers, flash-attn and
  vllm, the CPython versions and platforms of its wheels on PyPI.
* ``requires_python.json.gz``: the Requires-Python of those releases' wheels, which decides where the
  tags cannot (an ``abi3`` wheel fits every newer CPython by its tags; pip still skips it outside the range).

The files are a few MB uncompressed and read only when an error line needs them (``check`` never
does): loading costs tens of milliseconds.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from envdoctor.versions import version_tuple

DIR = Path(__file__).parent
API_INDEX = DIR / "api_index.json.gz"
WHEEL_TAGS = DIR / "wheel_tags.json.gz"
REQUIRES_PYTHON = DIR / "requires_python.json.gz"
PYPI_RELEASE = "https://pypi.org/project/{package}/{version}/"
# Import name -> distribution name, for the packages the index covers.
DISTRIBUTIONS = {"huggingface_hub": "huggingface-hub"}


@dataclass(frozen=True)
class NameHistory:
    """Which mined releases of ``package`` have ``name`` (releases are minor releases, oldest first)."""

    package: str
    name: str
    releases: tuple[str, ...]
    present: tuple[bool, ...]

    @property
    def first(self) -> str:
        return self.releases[self.present.index(True)]

    @property
    def last(self) -> str:
        return self.releases[len(self.present) - 1 - self.present[::-1].index(True)]

    def removed_in(self) -> str | None:
        """The first mined release after the last one that has the name (None if still present)."""
        i = len(self.present) - 1 - self.present[::-1].index(True)
        return self.releases[i + 1] if i + 1 < len(self.releases) else None

    def has(self, version: str) -> bool | None:
        """Whether the release series of ``version`` has the name (None outside the mined range)."""
        minor = version_tuple(version)[:2]
        for release, present in zip(self.releases, self.present, strict=True):
            if version_tuple(release)[:2] == minor:
                return present
        return None


def _load(path: Path) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _Index(Mapping[str, Any]):
    """The API index by distribution, each entry decoded from its JSON text when first read; a damaged
    entry reads as one with no releases and no names."""

    def __init__(self, texts: dict[str, Any]) -> None:
        self._texts: dict[str, Any] = texts
        self._entries: dict[str, dict[str, Any]] = {}

    def __contains__(self, dist: object) -> bool:  # without decoding (Mapping's own would)
        return dist in self._texts

    def __getitem__(self, dist: str) -> dict[str, Any]:
        if dist not in self._entries:
            try:
                entry = json.loads(self._texts[dist])
            except (TypeError, ValueError):
                entry = None
            ok = isinstance(entry, dict) and {"versions", "names"} <= entry.keys()
            self._entries[dist] = entry if ok else {"versions": [], "names": {}}
        return self._entries[dist]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


@cache
def api_index() -> _Index:
    return _Index(_load(API_INDEX))


@cache
def wheel_tags() -> dict[str, Any]:
    return _load(WHEEL_TAGS)


@cache
def requires_python() -> dict[str, Any]:
    return _load(REQUIRES_PYTHON)


def python_range(package: str, version: str) -> str | None:
    """The Requires-Python of ``package`` ``version``'s wheels ('<3.13,>=3.9'), None when not mined."""
    spec = _release(requires_python().get(package, {}), version)
    return spec if isinstance(spec, str) else None


def _release(table: dict[str, Any], version: str) -> Any:
    """``table[version]``, where '0.10' names the release '0.10.0' (pip reads them as one version)."""
    if version in table:
        return table[version]
    want = version_tuple(version)
    for key, value in table.items():
        have = version_tuple(key)
        width = max(len(want), len(have))
        if want + (0,) * (width - len(want)) == have + (0,) * (width - len(have)):
            return value
    return None


def python_allowed(package: str, version: str, python: str) -> bool | None:
    """Whether Python ``python`` ('3.13', '3.11.9') is inside the release's Requires-Python; None when
    the range is not known or cannot be read."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    spec = python_range(package, version)
    if spec is None:
        return None
    try:
        return Version(python) in SpecifierSet(spec)
    except (InvalidSpecifier, InvalidVersion):
        return None


def distribution_of(module: str) -> str | None:
    """The indexed distribution a dotted module path belongs to ('torch.nn' -> 'torch'), or None."""
    top = module.split(".", 1)[0]
    dist = DISTRIBUTIONS.get(top, top)
    return dist if dist in api_index() else None


def name_history(dotted: str) -> NameHistory | None:
    """The releases that have ``dotted`` ('torch.compiler.set_stance'), None when it was never mined."""
    dist = distribution_of(dotted)
    if dist is None:
        return None
    entry = api_index()[dist]
    parent, _, leaf = dotted.rpartition(".")
    spans = entry["names"].get(parent, {}).get(leaf)
    if spans is None:
        return None
    releases = tuple(entry["versions"])
    present = [False] * len(releases)
    for a, b in zip(spans[::2], spans[1::2], strict=True):
        for i in range(a, b + 1):
            present[i] = True
    return NameHistory(dist, dotted, releases, tuple(present))


def defining_distributions(leaf: str) -> list[tuple[str, str]]:
    """The indexed distributions with a public name ``leaf`` (a class or function), each with its
    shortest dotted path: [('torch', 'torch.distributed.fsdp.FullyShardedDataParallel')]."""
    found: dict[str, str] = {}
    for dist, entry in api_index().items():
        paths = [f"{parent}.{leaf}" for parent, leaves in entry["names"].items() if leaf in leaves]
        if paths:
            found[dist] = min(paths, key=lambda p: (p.count("."), p))
    return sorted(found.items())


def class_member_histories(cls: str, member: str) -> list[NameHistory]:
    """Every indexed class named ``cls`` that has (in some release) a member ``member``."""
    out = []
    for entry in api_index().values():
        for parent, leaves in entry["names"].items():
            if parent.rpartition(".")[2] == cls and member in leaves:
                history = name_history(f"{parent}.{member}")
                if history is not None:
                    out.append(history)
    return out


# Platform families as a report names them, and the wheel platform tags they install.
PLATFORM_PREFIXES = {"windows": ("win",), "macos": ("macosx",), "linux": ("manylinux", "linux", "musllinux")}


def wheel_pythons(package: str, version: str, family: str | None = None) -> list[str] | None:
    """Python tags ('cp310', 'py3', 'cp38-abi3') of the wheels of ``package`` ``version`` on PyPI, for
    one platform family ('windows', 'macos', 'linux') or any; None if the release was not mined."""
    release = _release(wheel_tags().get(package, {}), version)
    if release is None:
        return None
    prefixes = PLATFORM_PREFIXES.get(family or "", ("",))
    return [py for py, platforms in release.items() if any(p.startswith(prefixes) for p in platforms)]


def wheel_platforms(package: str, version: str) -> set[str] | None:
    """The platform tags of the wheels of ``package`` ``version`` on PyPI ('any', 'win_amd64',
    'manylinux_aarch64'); None if the release was not mined."""
    release = _release(wheel_tags().get(package, {}), version)
    if release is None:
        return None
    return {platform for platforms in release.values() for platform in platforms}


def first_release_with_platform(package: str, suffix: str) -> str | None:
    """The oldest mined release of ``package`` with a wheel whose platform tag ends with ``suffix``
    ('_amd64', '_aarch64')."""
    releases = [
        v
        for v, tags in wheel_tags().get(package, {}).items()
        if any(p.endswith(suffix) for platforms in tags.values() for p in platforms)
    ]
    return min(releases, key=version_tuple) if releases else None


def supports(pythons: list[str], cp: str) -> bool:
    """Whether wheels tagged ``pythons`` ('cp310', 'py3', 'cp38-abi3') install on CPython ``cp`` ('cp311')."""
    for tag in pythons:
        if tag in (cp, "py3") or (
            tag.endswith("-abi3") and int(tag[2:].removesuffix("-abi3") or 0) <= int(cp[2:] or 0)
        ):
            return True
    return False


def releases_with_python(package: str, cp: str, family: str | None = None) -> list[str]:
    """The releases of ``package`` that pip installs on CPython ``cp`` ('cp311') on the family: a wheel
    for it, and a Requires-Python that admits it; oldest first."""
    python = f"{cp[2]}.{cp[3:]}"
    releases = [
        v
        for v in wheel_tags().get(package, {})
        if supports(wheel_pythons(package, v, family) or [], cp)
        and python_allowed(package, v, python) is not False
    ]
    return sorted(releases, key=version_tuple)


def release_url(package: str, version: str) -> str:
    return PYPI_RELEASE.format(package=package, version=version)
