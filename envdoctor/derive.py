"""Diagnoses derived from mined knowledge, for error families no hand-written signature lists name by name.

An ``AttributeError`` / ``ImportError`` naming an API of an indexed package (torch, transformers,
numpy, accelerate, peft, torchvision, diffusers, huggingface_hub) is looked up in the API index mined
from the packages' own wheels (:mod:`envdoctor.knowledge.mined`): when the name appears only from some
release on, or disappears after one, the installed version explains the error, and the finding says
so with the release numbers. pip's "No matching distribution found for torch==X" next to a known
Python is looked up in the wheel listings: the release has no wheel for that Python.

The mined files are loaded only when an error line has one of these shapes, so ``check`` (no error
lines) never reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envdoctor.facts import Facts
from envdoctor.findings import Action, Finding, Manual, PipInstall, Severity
from envdoctor.paste import SOURCE_LOCATION
from envdoctor.readers import installed_torch, numpy_version

if TYPE_CHECKING:
    from envdoctor.knowledge.mined import NameHistory

# (pattern, kind): kind "attr" gives module + name, "import" the same, "module" a dotted module path,
# "member" a class name and member, "numpy" a NumPy alias removed in the release it names.
_API_ERRORS = (
    (re.compile(r"module '(?P<module>[A-Za-z_][\w.]*)' has no attribute '(?P<name>\w+)'"), "attr"),
    (re.compile(r"cannot import name '(?P<name>\w+)' from '(?P<module>[A-Za-z_][\w.]*)'"), "attr"),
    # Pastes drop the quotes or the closing one ("No module named 'torchvision.transforms.functional_tensor)").
    (re.compile(r"No module named '?(?P<module>[A-Za-z_][\w.]*\.\w+)(?![\w.])"), "module"),
    (re.compile(r"'(?P<cls>[A-Z]\w*)' object has no attribute '(?P<name>\w+)'"), "member"),
    (re.compile(r"`np\.(?P<name>\w+)` was removed in the NumPy (?P<release>\d+\.\d+)"), "numpy"),
)
_NO_DIST = re.compile(
    r"No matching distribution found for (?P<package>torch|torchvision|torchaudio|xformers|flash-attn|"
    r"flash_attn|vllm)==(?P<version>\d+(?:\.\d+)+)(?:\+(?P<local>\w+))?",
    re.IGNORECASE,
)
# A traceback frame inside an installed package: which package made the failing call. Known by its
# '", line N' tail, so a frame whose 'File "' head was cut off in the paste still counts; an egg
# install puts the package one folder deeper (site-packages/transformers-4.27.0-py3.10.egg/transformers/).
_FRAME = re.compile(
    r'[/\\](?:site|dist)-packages[/\\](?:[\w.-]+\.egg[/\\])?(?P<package>[A-Za-z_]\w*)[/\\][^"\n]*", line \d+'
)
# A call into an indexed package's class or function with a keyword that release does not take.
_KEYWORD = re.compile(
    r"TypeError: (?P<callee>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*?)(?:\.__init__)?\(\) "
    r"got an unexpected keyword argument '(?P<argument>\w+)'"
)
TRIGGERS = ("has no attribute", "cannot import name", "No module named", "was removed in the NumPy")


@dataclass
class Derived:
    """A finding derived from mined knowledge, with the error line it explains."""

    finding: Finding
    excerpt: str


def derive(facts: Facts) -> list[Derived]:
    """Findings that the mined API index and wheel listings derive from the report's error lines."""
    text = "\n".join(facts.error_lines)
    out: list[Derived] = []
    if any(t in text for t in TRIGGERS):
        out += _api_findings(facts, text)
    if "No matching distribution" in text:
        out += _wheel_findings(facts, text)
        out += _requires_python_findings(facts, text)
    if "unexpected keyword argument" in text:
        out += _keyword_findings(facts, text)
    if "xFormers was built for" in text:
        out += _extension_arch_findings(facts, text)
    return out


def _installed(facts: Facts, package: str) -> str | None:
    if package == "torch":
        return installed_torch(facts)
    if package == "numpy":
        return numpy_version(facts)
    return (facts.packages.versions or {}).get(package)


def _caller(text: str, before: int, package: str) -> str | None:
    """The installed package whose frame comes last before position ``before`` (not ``package`` itself)."""
    own = package.replace("-", "_")
    frames = sorted(
        [*_FRAME.finditer(text, 0, before), *SOURCE_LOCATION.finditer(text, 0, before)],
        key=lambda m: m.start(),
    )
    callers = [m.group("package") for m in frames]
    callers = [c for c in callers if c != own]
    if not callers and "transformers" in text[:before] and package == "torch":
        return "transformers"  # transformers' "Failed to import transformers.x because ..." wrapper
    return callers[-1] if callers else None


def _api_findings(facts: Facts, text: str) -> Iterator[Derived]:
    from envdoctor.knowledge import mined

    seen: set[str] = set()
    for pattern, kind in _API_ERRORS:
        for m in pattern.finditer(text):
            if kind == "member":
                histories = mined.class_member_histories(m.group("cls"), m.group("name"))
            else:
                if kind == "numpy":
                    dotted = f"numpy.{m.group('name')}"
                elif kind == "module":
                    dotted = m.group("module")
                else:
                    dotted = f"{m.group('module')}.{m.group('name')}"
                history = mined.name_history(dotted)
                histories = [history] if history else []
                if not histories and kind == "attr" and "cannot import" in m.group(0):
                    internal = _internal_import(facts, m.group("module"), m.group("name"), text, m.start())
                    if internal is not None and m.group(0) not in seen:
                        seen.add(m.group(0))
                        internal.evidence["error message"] = m.group(0)
                        yield Derived(internal, m.group(0))
            for history in histories:
                if history.name in seen:
                    continue
                finding = _api_finding(facts, history, _caller(text, m.start(), history.package))
                if finding is not None:
                    seen.add(history.name)
                    finding.evidence["error message"] = m.group(0)
                    yield Derived(finding, m.group(0))
                    break


def _keyword_findings(facts: Facts, text: str) -> Iterator[Derived]:
    """``TypeError: FullyShardedDataParallel.__init__() got an unexpected keyword argument
    'forward_prefetch'`` raised where another installed package calls a class or function that the API
    index finds in exactly one other indexed package: the caller was written for another release of
    that package. Keywords are not mined, so which side is older is unknown: a warning naming both."""
    from envdoctor.knowledge import mined

    for m in _KEYWORD.finditer(text):
        frames = [f.group("package") for f in _FRAME.finditer(text, 0, m.start())]
        owners = [  # a name the calling package re-exports is not what it was written against
            o
            for o in mined.defining_distributions(m.group("callee").rpartition(".")[2])
            if o[0] not in frames[-1:]
        ]
        if len(owners) != 1:
            continue
        package, dotted = owners[0]
        caller = _caller(text, m.start(), package)
        if caller is None:
            continue
        installed, caller_version = _installed(facts, package), _installed(facts, caller)
        have = f"{package} {installed}" if installed else f"the {package} here"
        made = f"{caller} {caller_version}" if caller_version else caller
        fix = (
            f"Install the {package} release {made} was made for (its requirements name it), "
            f"or a release of {caller} made for {have}."
        )
        evidence = {
            "api": f"{dotted}: defined in {package} (mined from the released wheels); keywords are not mined",
            "caller": caller,
            "error message": m.group(0),
        }
        if installed:
            evidence[f"packages.versions.{package}"] = installed
        if caller_version:
            evidence[f"packages.versions.{caller}"] = caller_version
        message = (
            f"{caller} calls {dotted} with {m.group('argument')}, which {have} does not take: "
            f"{made} was written for another {package} release"
        )
        finding = _another_release(_api_id(package, caller), message, evidence, fix, package, installed)
        yield Derived(finding, m.group(0))


def _internal_import(facts: Facts, module: str, name: str, text: str, at: int) -> Finding | None:
    """``cannot import name 'X' from 'torch.utils._python_dispatch'``: an internal module of an indexed
    package (a path part starting with ``_``) is not in the API index, and its names change between
    releases, so the importer was written for another release. Which side is older is unknown: a warning.
    """
    from envdoctor.knowledge import mined

    package = mined.distribution_of(module)
    if package is None or not any(part.startswith("_") for part in module.split(".")[1:]):
        return None
    installed = _installed(facts, package)
    caller = _caller(text, at, package)
    have = f"{package} {installed} does not have it" if installed else f"the {package} here does not have it"
    who = caller or "the importing package"
    fix = (
        f"Install the {package} release {who} was made for (its requirements name it), "
        f"or a release of {who} made for the installed {package}."
    )
    evidence = {"api": f"{module} is internal to {package} (not in the mined public API): its names change"}
    if installed:
        evidence[f"packages.versions.{package}"] = installed
    if caller:
        evidence["caller"] = caller
    message = (
        f"{name} is imported from {module}, an internal module of {package} whose names change between "
        f"releases; {have}: {who} was written for another {package} release"
    )
    return _another_release("requirement-conflict", message, evidence, fix, package, installed)


def _another_release(
    finding_id: str, message: str, evidence: dict[str, Any], fix: str, package: str, installed: str | None
) -> Finding:
    """A warning that one package was written for another release of ``package`` (which side is older
    is unknown), sourced to the installed release's page."""
    from envdoctor.knowledge import mined

    return Finding(
        id=finding_id,
        severity=Severity.WARNING,
        message=message,
        evidence=evidence,
        fix=fix,
        actions=[Manual(fix)],
        sources=[
            mined.release_url(package, installed) if installed else f"https://pypi.org/project/{package}/"
        ],
    )


def _api_finding(facts: Facts, h: NameHistory, caller: str | None) -> Finding | None:
    """Why ``h.name`` is missing: the installed release predates it or comes after its removal."""
    from envdoctor.knowledge import mined

    installed = _installed(facts, h.package)
    removed = h.removed_in()
    added = h.first if h.first != h.releases[0] else None
    if installed is not None:
        if h.has(installed) is not False:
            return None  # the installed release has it (or is outside the mined range): not this cause
        if added and _older(installed, h.first):
            side = "old"
        elif removed and not _older(installed, removed):
            side = "new"
        else:
            side = "outside"
    elif added or removed:
        side = "outside" if added and removed else ("old" if added else "new")
    else:
        return None  # every mined release has the name: the error is not about versions
    who = f"{caller} uses it" if caller else "the calling code uses it"
    have = (
        f"this environment has {h.package} {installed}"
        if installed
        else f"{h.package}'s version is not stated"
    )
    other = caller or "the calling package"
    if side == "old":
        message = f"{h.name} first appears in {h.package} {h.first}; {have}, and {who}"
        fix = f"Install {h.package}>={h.first}, or a release of {other} made for the older {h.package}."
        spec, source_version = f"{h.package}>={h.first}", h.first
    elif side == "new":
        message = f"{h.name} was removed in {h.package} {removed} (last in {h.last}); {have}, and {who}"
        fix = (
            f"Install {h.package}<{removed}, or upgrade {other} to a release made for {h.package} {removed}+."
        )
        spec, source_version = f"{h.package}<{removed}", str(removed)
    else:
        message = f"{h.name} exists only in {h.package} {h.first} to {h.last}; {have}, and {who}"
        fix = f"Install {h.package}>={h.first},<{removed}, or a release of {other} made for the installed {h.package}."
        spec, source_version = f"{h.package}>={h.first},<{removed}", h.first
    actions: list[Action] = [PipInstall((spec,))]
    too_old = side == "old"
    finding_id = _api_id(h.package, caller)
    if finding_id == "transformers-torch-incompat" and too_old:
        actions = [PipInstall((f"torch>={h.first}",))]
    evidence = {
        "api": f"{h.name}: in {h.package} {h.first}..{h.last} (mined from the released wheels)",
        f"packages.versions.{h.package}": installed,
    }
    if caller:
        evidence["caller"] = caller
    said = facts.stated.get(f"packages.versions.{h.package}") or (
        facts.stated.get("torch.version") if h.package == "torch" else None
    )
    if installed and said:
        evidence["stated, not tool output"] = said
    return Finding(
        id=finding_id,
        severity=Severity.ERROR,
        message=message,
        evidence=evidence,
        fix=fix,
        actions=actions if installed else [Manual(fix)],
        sources=[mined.release_url(h.package, source_version)],
    )


def _api_id(package: str, caller: str | None) -> str:
    if package == "numpy":
        return "numpy-abi"
    if package == "torch" and caller == "transformers":
        return "transformers-torch-incompat"
    return "requirement-conflict"


def _older(a: str, b: str) -> bool:
    from envdoctor.versions import version_tuple

    a_parts, b_parts = version_tuple(a), version_tuple(b)
    width = max(len(a_parts), len(b_parts))
    return a_parts + (0,) * (width - len(a_parts)) < b_parts + (0,) * (width - len(b_parts))


def _wheel_findings(facts: Facts, text: str) -> Iterator[Derived]:
    """pip found no wheel of ``torch==X`` for this Python: name the Pythons X supports and the newest
    release that supports this Python. The Python is the stated one, else the one that pip's own list
    of the versions it could install fits (see _offered_python)."""
    from envdoctor.knowledge import mined
    from envdoctor.knowledge.cuda import minor_of

    stated_py = minor_of(facts.python.version) if facts.python.version else None
    family = _platform_family(facts.system.os)
    for m in _NO_DIST.finditer(text):
        package = m.group("package").lower().replace("_", "-")
        version = m.group("version")
        pythons = mined.wheel_pythons(package, version, family)
        offered = _OFFERED.findall(text, 0, m.start())
        py = stated_py or (_offered_python(package, offered[-1], family) if offered else None)
        if not pythons or py is None:
            continue
        cp = "cp" + py.replace(".", "")
        excluded = mined.python_allowed(package, version, py) is False
        if mined.supports(pythons, cp) and not excluded:
            continue
        releases = mined.releases_with_python(package, cp, family)
        newer = [r for r in releases if _older(version, r)]
        newest = releases[-1] if releases else None
        cpython = sorted((p for p in pythons if re.fullmatch(r"cp3\d+", p)), key=lambda p: int(p[3:]))
        supported = ", ".join(_py(p) for p in cpython) or ", ".join(pythons)
        where = f" on {family.capitalize() if family != 'macos' else 'macOS'}" if family else ""
        message = f"{package} {version} has no wheel for Python {py}{where} (it ships {supported})"
        if excluded:
            supported = mined.python_range(package, version) or supported
            message = (
                f"{package} {version} requires Python {supported}{where} "
                f"(its wheels' Requires-Python; pip skips it on Python {py})"
            )
        if newest:
            first = f"the first newer release with a Python {py} wheel is {newer[0]}, " if newer else ""
            message += f"; {first}the newest is {newest}"
            fix = f"Install {package}=={newest} (or use a Python that {package} {version} supports: {supported})."
            actions: list[Action] = [PipInstall((f"{package}=={newest}",))]
        else:
            fix = f"Use a Python that {package} {version} supports ({supported})."
            actions = [Manual(fix)]
        evidence = {
            "python.version": facts.python.version,
            "requested": f"{package}=={version}",
            "wheels": f"{package} {version}: {supported} (PyPI file listing, mined)",
            "error message": m.group(0),
        }
        if stated_py is None:
            evidence["python.version"] = None
            evidence["python inferred"] = (
                f"{py}: the only Python whose {package} wheels start at {offered[-1].split(',')[0].strip()}, "
                "the first release pip listed as installable"
            )
        finding = Finding(
            id="python-unsupported",
            severity=Severity.ERROR,
            message=message,
            evidence=evidence,
            fix=fix,
            actions=actions,
            sources=[mined.release_url(package, version)],
        )
        yield Derived(finding, m.group(0))


# pip's list of the releases it could install here: "(from versions: 2.2.0, 2.2.1, ..., 2.5.1)".
_OFFERED = re.compile(r"\(from versions: (\d[^)]*)\)")


def _offered_python(package: str, listing: str, family: str | None) -> str | None:
    """The Python that pip's list of installable releases fits: pip lists every release with a wheel
    for this interpreter and platform, so the first one listed is the first release built for it
    (torch's list starting at 2.2.0 is Python 3.12's). The one CPython whose first release with a
    wheel is the first listed, and which has a wheel of every release listed; None when no single one
    fits (local versions like +cu118 come from another index and are not judged)."""
    from envdoctor.knowledge import mined
    from envdoctor.versions import version_tuple

    offered = [v.strip() for v in listing.split(",") if v.strip()]
    if not offered or any("+" in v or not re.fullmatch(r"\d+(?:\.\d+)+", v) for v in offered):
        return None
    fits = []
    for minor in range(6, 20):
        releases = mined.releases_with_python(package, f"cp3{minor}", family)
        if (
            releases
            and version_tuple(releases[0]) == version_tuple(offered[0])
            and set(offered) <= set(releases)
        ):
            fits.append(f"3.{minor}")
    return fits[0] if len(fits) == 1 else None


# pip's own listing of the releases it skipped for their Requires-Python, and the request it then failed.
_IGNORED_PYTHON = re.compile(
    r"Ignored the following versions that require a different python version: (?P<list>.*)"
)
_REQUIRES = re.compile(
    r"(?P<version>\d+(?:\.\d+)*(?:\.?(?:post|rc|a|b)\d+)?) Requires-Python (?P<spec>[^;]+)"
)
_NO_DIST_ANY = re.compile(
    r"No matching distribution found for (?P<package>[A-Za-z0-9][\w.-]*)(?:===?(?P<version>\d[\w.]*))?"
)


def _requires_python_findings(facts: Facts, text: str) -> Iterator[Derived]:
    """pip skipped the requested release because its Requires-Python excludes this Python, and said so
    ("Ignored the following versions that require a different python version: 0.10.0 Requires-Python
    <3.13,>=3.9"). That holds for every package, and for wheels whose tags cannot tell (``abi3`` wheels
    install on any newer CPython as far as their tags go; Requires-Python is what stops them). pip
    prints the listing just before its "No matching distribution" for the same request (a wrapper's
    log may quote that line first: then the nearest one before the listing is taken)."""
    from envdoctor.versions import version_tuple

    requests = list(_NO_DIST_ANY.finditer(text))
    for listing in _IGNORED_PYTHON.finditer(text):
        before = [r for r in requests if r.end() <= listing.start()]
        m = next((r for r in requests if r.start() >= listing.end()), before[-1] if before else None)
        skipped = {
            r.group("version"): r.group("spec").strip() for r in _REQUIRES.finditer(listing.group("list"))
        }
        if m is None or not skipped:
            continue
        package, wanted = m.group("package"), m.group("version")
        if wanted:
            version = next((v for v in skipped if not _older(v, wanted) and not _older(wanted, v)), None)
        else:  # unpinned: no release fitted, the newest one pip skipped says why
            version = max(skipped, key=version_tuple)
        if version is None:
            continue
        spec = skipped[version]
        py = facts.python.version
        message = f"pip skipped {package} {version}: it requires Python {spec}" + (
            f", and this environment has Python {py}" if py else ", which this Python is not"
        )
        fix = f"Use a Python that satisfies {spec} for {package} {version}, or a {package} release made for this Python."
        finding = Finding(
            id="python-unsupported",
            severity=Severity.ERROR,
            message=message,
            evidence={
                "python.version": py,
                "requested": f"{package}=={wanted}" if wanted else package,
                "requires-python": f"{package} {version}: {spec} (pip's own listing)",
                "error message": m.group(0),
            },
            fix=fix,
            actions=[Manual(fix)],
            sources=[f"https://pypi.org/project/{package}/{version}/"],
        )
        yield Derived(finding, m.group(0))
        return


_XFORMERS_CUDA = re.compile(
    r"xFormers was built for:\s*(?:\S+\.py:\d+\s+)?PyTorch \S+ with CUDA (?P<cuda>\d{4,5})"
)


def _extension_arch_findings(facts: Facts, text: str) -> Iterator[Derived]:
    """An extension whose CUDA build is known (xformers says it) has no cubin for a GPU newer than
    that toolkit compiles for: an RTX 5090 (sm_120) next to an xformers built with CUDA 12.1."""
    from envdoctor.knowledge.cuda import toolkit_archs
    from envdoctor.versions import version_tuple

    m = _XFORMERS_CUDA.search(text)
    if m is None:
        return
    n = int(m.group("cuda"))  # xformers writes 12.1 as 1201, 11.8 as 1108
    cuda = f"{n // 100}.{n % 100}"
    span = toolkit_archs(cuda)
    if span is None:
        return
    low, high, source = span
    above = [
        g
        for g in facts.nvidia.gpus or []
        if g.compute_capability and version_tuple(g.compute_capability) > version_tuple(high)
    ]
    if not above:
        return
    names = ", ".join(
        sorted({f"{g.name} (sm_{(g.compute_capability or '').replace('.', '')})" for g in above})
    )
    finding = Finding(
        id="arch-not-in-wheel",
        severity=Severity.WARNING,
        message=f"xformers was built with CUDA {cuda}, which compiles for sm_{low.replace('.', '')} .. "
        f"sm_{high.replace('.', '')}: no xformers kernels for {names}",
        evidence={
            "nvidia.gpus": [g.name for g in above],
            f"knowledge.cuda_toolkit_archs[{cuda}]": f"{low}..{high}",
            "error message": m.group(0),
        },
        fix="Install an xformers wheel built with a CUDA that compiles for the GPU (for sm_120: CUDA 12.8+).",
        actions=[Manual("Install an xformers wheel built with a CUDA that compiles for the GPU.")],
        sources=[source],
        inferred=any(g.capability_inferred for g in above),
    )
    yield Derived(finding, m.group(0))


def _platform_family(os_name: str | None) -> str | None:
    """'Microsoft Windows 11 Pro' -> 'windows', 'macOS 14.2' -> 'macos', 'Ubuntu 22.04' -> 'linux'."""
    name = (os_name or "").lower()
    if "windows" in name:
        return "windows"
    if "mac" in name or "darwin" in name:
        return "macos"
    if re.search(r"linux|ubuntu|debian|centos|red hat|rocky|fedora|suse", name):
        return "linux"
    return None


def _py(cp: str) -> str:
    return f"{cp[2]}.{cp[3:]}"
