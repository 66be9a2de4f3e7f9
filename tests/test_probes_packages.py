"""Unmet requirements and nvidia-* wheel libraries, with real pip in a throwaway venv."""

from __future__ import annotations

import re
import subprocess

import pytest
from packaging.utils import canonicalize_name

from envdoctor.probes import collect, target


@pytest.fixture(scope="module")
def broken_env(venv_factory):
    """requests, jinja2 and the CUDA runtime wheel; then MarkupSafe removed and idna put below its floor."""
    python = venv_factory("pip-broken", ["requests", "jinja2", "nvidia-cuda-runtime"])
    for args in (["uninstall", "-y", "-q", "markupsafe"], ["install", "-q", "--no-deps", "idna==2.4"]):
        done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"pip {' '.join(args)} failed (no index reachable?): {done.stderr.strip()[-200:]}")
    return python


@pytest.mark.slow
def test_unmet_requirements_match_pip_check(broken_env) -> None:
    facts = collect(python=str(broken_env), quick=True)
    found = {(canonicalize_name(r.package), r.requirement, r.installed) for r in facts.packages.unmet}
    assert found == {("jinja2", "MarkupSafe>=2.0", None), ("requests", "idna<4,>=2.5", "2.4")}
    # pip itself is the oracle: the same (package, required project) pairs, nothing more
    pip_check = subprocess.run(
        [str(broken_env), "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    ).stdout
    pip_pairs = set(re.findall(r"^(\S+) \S+ (?:requires|has requirement) ([A-Za-z0-9_.-]+)", pip_check, re.M))
    assert {(p, canonicalize_name(q.split("<")[0].split(">")[0])) for p, q, _ in found} == {
        (canonicalize_name(p), canonicalize_name(q)) for p, q in pip_pairs
    }


@pytest.mark.slow
def test_nvidia_wheel_and_its_library_are_found(broken_env) -> None:
    facts = collect(python=str(broken_env), quick=True)
    assert "nvidia-cuda-runtime" in facts.packages.nvidia_wheels
    wheel_libs = [lib for lib in facts.cuda.libraries if lib.origin == "wheel"]
    assert any(lib.name.startswith("libcudart.so.") and "/nvidia/" in lib.path for lib in wheel_libs)


def test_markers_and_extras_are_evaluated_like_pip() -> None:
    markers = {
        "python_version": "3.11",
        "python_full_version": "3.11.7",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "os_name": "posix",
    }
    dists = [
        (
            "demo",
            "1.0",
            "/site",
            [
                "numpy<2,>=1.21",
                'pytest>=8; extra == "test"',
                'pywin32>=300; sys_platform == "win32"',
                'tomli>=1.1; python_version < "3.11"',
                'typing-extensions>=4.10; python_version >= "3.8"',
                "not a valid requirement ((",
            ],
        )
    ]
    installed = {"numpy": "2.1.0", "typing-extensions": "4.12.2"}
    unmet = target.unmet_requirements(dists, installed, markers)
    assert [(u.requirement, u.installed) for u in unmet] == [("numpy<2,>=1.21", "2.1.0")]
    installed["typing-extensions"] = "4.9.0"
    del installed["numpy"]
    unmet = target.unmet_requirements(dists, installed, markers)
    assert [(u.requirement, u.installed) for u in unmet] == [
        ("numpy<2,>=1.21", None),
        ("typing-extensions>=4.10", "4.9.0"),
    ]
