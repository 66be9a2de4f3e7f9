"""The target interpreter's facts and packages, from one child process of that interpreter.

Touches: one child process of the target interpreter (reads package metadata on its sys.path).
Imports nothing of the target's packages, writes nothing.

The child (``child_env.py``) reads metadata headers only, so it takes tens of milliseconds and no
broken package can crash it. Requirement markers are evaluated here with ``packaging`` (the target
may not have it), using the marker variables the child reported.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from envdoctor.facts import Distribution, PackagesFacts, PythonFacts, Requirement, is_cuda_wheel
from envdoctor.probes import _process

# Tracked ML packages (normalised names) reported in PackagesFacts.versions.
TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "torchaudio",
    "numpy",
    "transformers",
    "accelerate",
    "deepspeed",
    "flash-attn",
    "xformers",
    "bitsandbytes",
    "triton",
    "peft",
    "trl",
    "vllm",
    "transformer-engine",
    "torchao",
)
TORCH_DISTS = ("torch", "torch-nightly")

CHILD_SOURCE = Path(__file__).with_name("child_env.py")


class TargetNotPython(Exception):
    """The target did not run the probe as a Python 3.8+ interpreter (message: one line why)."""


@dataclass
class TargetResult:
    python: PythonFacts
    packages: PackagesFacts
    # sys.path entries holding an ``nvidia/`` package directory (where nvidia-* wheels put libraries).
    nvidia_roots: list[str] = field(default_factory=list)


def probe(python: str, timeout: float) -> TargetResult:
    """Run the metadata child in ``python`` and turn its payload into facts.

    When ``python`` is the interpreter running envdoctor, the same code runs in process: it only
    reads files, and a child interpreter would cost more than the reading (most of ``check --quick``).
    """
    if _is_this_interpreter(python):
        from envdoctor.probes import child_env

        # The entries this process added for itself (the script's folder, the working directory of
        # `python -m`) are not the environment: a child started from / would not see them either.
        own = {os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else "", os.getcwd()}
        return from_payload(child_env.payload([e for e in sys.path if e not in ("", ".") and e not in own]))
    try:
        done = _process.run_python(python, CHILD_SOURCE.read_text(encoding="utf-8"), timeout)
    except OSError as exc:
        raise TargetNotPython(f"cannot run it ({exc.strerror or exc})") from None
    if done.timed_out:
        raise TimeoutError(f"{python} did not answer within {timeout:g}s")
    data = done.payload()
    if data is None:
        why = done.stderr_tail() or f"exit code {done.returncode}, no output"
        raise TargetNotPython(f"not a Python 3.8+ interpreter ({why})")
    return from_payload(data)


def from_payload(data: dict[str, Any]) -> TargetResult:
    """Facts from the child's JSON payload."""
    py = data.get("python") or {}
    python = PythonFacts(
        version=py.get("version"),
        executable=py.get("executable"),
        implementation=py.get("implementation"),
        prefix=py.get("prefix"),
        env_kind=py.get("env_kind"),
        externally_managed=py.get("externally_managed"),
        conda_packages=py.get("conda_packages"),
    )
    dists = [(str(n), str(v), str(loc), list(reqs)) for n, v, loc, reqs in data.get("dists") or []]
    first: dict[str, tuple[str, str, str, list[str]]] = {}
    for dist in dists:
        first.setdefault(
            canonicalize_name(dist[0]), dist
        )  # sys.path order: the first one is what imports get
    installed = {name: dist[1] for name, dist in first.items()}
    torch_dirs = data.get("torch_dirs") or []
    packages = PackagesFacts(
        versions={name: installed[name] for name in TRACKED_PACKAGES if name in installed},
        nvidia_wheels={n: v for n, v in sorted(installed.items()) if is_cuda_wheel(n)},
        unmet=unmet_requirements(first.values(), installed, data.get("markers") or {}),
        torch_installs=torch_installs(dists, torch_dirs),
        torch_build=parse_torch_version_py(torch_dirs[0].get("version_py")) if torch_dirs else None,
        all=dict(sorted(installed.items())),
    )
    return TargetResult(python, packages, list(data.get("nvidia_roots") or []))


def unmet_requirements(dists: Any, installed: dict[str, str], markers: dict[str, str]) -> list[Requirement]:
    """Every base ``Requires-Dist`` not satisfied by what is installed, as ``pip check`` reports.

    Requirements behind an extra (``; extra == "dev"``) only count when that extra is requested,
    which nothing records after install, so, like pip, only the base requirements are checked.
    Versions that ``packaging`` cannot parse are not judged.
    """
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Req
    from packaging.version import InvalidVersion, Version

    environment = {**markers, "extra": ""}
    unmet = []
    for name, version, _location, requires in dists:
        for text in requires:
            try:
                req = Req(text)
                if req.marker is not None and not req.marker.evaluate(environment):
                    continue
            except (InvalidRequirement, ValueError, KeyError):
                continue
            have = installed.get(canonicalize_name(req.name))
            if have is not None and req.specifier:
                try:
                    if req.specifier.contains(Version(have), prereleases=True):
                        continue
                except InvalidVersion:
                    continue
            elif have is not None:
                continue
            spec = str(req.specifier) if req.specifier else ""
            unmet.append(Requirement(name, version, f"{req.name}{spec}", have))
    return unmet


def torch_installs(
    dists: list[tuple[str, str, str, list[str]]], torch_dirs: list[dict]
) -> list[Distribution]:
    """Every torch distribution on sys.path, plus torch directories that have no metadata at all."""
    found = [
        Distribution(name, version, location, has_metadata=True)
        for name, version, location, _ in dists
        if canonicalize_name(name) in TORCH_DISTS
    ]
    with_metadata = {d.location for d in found}
    for entry in torch_dirs:
        if entry.get("location") not in with_metadata:
            build = parse_torch_version_py(entry.get("version_py"))
            found.append(Distribution("torch", build["version"] or "unknown", entry.get("location"), False))
    return found


def parse_torch_version_py(text: str | None) -> dict[str, str | None]:
    """``torch/version.py`` read as data (never executed): version, cuda, hip and git_version."""
    build: dict[str, str | None] = {"version": None, "cuda": None, "hip": None, "git_version": None}
    try:
        tree = ast.parse(text or "")
    except (SyntaxError, ValueError):
        return build
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name) or not isinstance(value, ast.Constant):
            continue
        key = "version" if target.id == "__version__" else target.id
        if key in build and isinstance(value.value, str):
            build[key] = value.value
    return build


def _is_this_interpreter(python: str) -> bool:
    """``python`` is the running interpreter, so its facts can be read here.

    Paths are compared without following links: a venv's ``bin/python`` links to the base
    interpreter's binary, but it is another environment.
    """
    return bool(sys.executable) and os.path.abspath(python) == os.path.abspath(sys.executable)
