"""The toolchain probe, the toolkit and PATH facts, and the same facts read from pasted reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from envdoctor.paste import facts_from_report
from envdoctor.probes import cuda, system, toolchain
from envdoctor.rules import evaluate


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the system gcc")
def test_toolchain_probe_reads_the_real_gcc_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-12.8")
    facts = toolchain.probe(10.0)
    real = subprocess.run(["gcc", "-dumpfullversion", "-dumpversion"], capture_output=True, text=True)
    assert facts.gcc == real.stdout.strip()
    assert "gcc" not in (facts.missing or [])


def test_toolchain_probe_on_a_planted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _script(tmp_path / "gcc", 'echo "14.1.0"')
    _script(tmp_path / "g++", 'echo "14.1.0"')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-12.8")  # a toolkit: the compiler version matters
    facts = toolchain.probe(1.0)
    assert facts.gcc == "14.1.0" and facts.gxx is None  # g++ is only asked without a gcc
    assert facts.missing == ["ninja", "cmake"] and facts.ninja is None


def test_toolchain_probe_bounds_a_hung_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _script(tmp_path / "g++", "sleep 30")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-12.8")
    started = time.monotonic()
    facts = toolchain.probe(1.0)
    assert time.monotonic() - started < 10 and facts.gxx is None and facts.gcc is None
    assert facts.missing == ["gcc", "ninja", "cmake"]


def test_toolchain_probe_spawns_nothing_without_a_toolkit(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(toolchain, "_toolkit_present", lambda: False)
    monkeypatch.setattr(toolchain, "compiler_version", lambda *a: pytest.fail("spawned a compiler"))
    assert toolchain.probe(1.0).gcc is None


def test_installed_toolkits_are_found_by_real_path_with_their_version(tmp_path: Path) -> None:
    for name, version in (("cuda-11.8", None), ("cuda-12.4", "12.4.1")):
        (tmp_path / name / "bin").mkdir(parents=True)
        if version:
            (tmp_path / name / "version.json").write_text(json.dumps({"cuda": {"version": version}}))
    (tmp_path / "cuda-11.8" / "version.txt").write_text("CUDA Version 11.8.89\n")
    (tmp_path / "cuda").symlink_to(tmp_path / "cuda-12.4")
    (tmp_path / "cuda-docs").mkdir()  # not a toolkit
    found = cuda.installed_toolkits(None, roots=(str(tmp_path),))
    assert [(Path(t.path).name, t.version) for t in found] == [("cuda-11.8", "11.8"), ("cuda-12.4", "12.4")]


def test_missing_dirs_names_the_variable_and_the_entry(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    env = {
        "PATH": f"{tmp_path}:/no/such/bin:{tmp_path}",
        "LD_LIBRARY_PATH": "/gone/lib64:",
        "CUDA_HOME": str(tmp_path),
    }
    assert system.missing_dirs(env) == [
        "PATH:/no/such/bin",
        "LD_LIBRARY_PATH:/gone/lib64",
        f"CUDA_HOME:{tmp_path}",
    ]
    _script(tmp_path / "bin" / "nvcc", "true")
    assert system.missing_dirs(env) == ["PATH:/no/such/bin", "LD_LIBRARY_PATH:/gone/lib64"]


def test_probe_records_path_nvcc_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "cuda-12.1" / "bin"
    bin_dir.mkdir(parents=True)
    _script(bin_dir / "nvcc", 'echo "Cuda compilation tools, release 12.1, V12.1.105"')
    (tmp_path / "cuda").symlink_to(tmp_path / "cuda-12.1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'cuda' / 'bin'}{os.pathsep}/usr/bin")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    facts = cuda.probe(5.0)
    assert facts.path_nvcc == str(bin_dir / "nvcc")
    assert facts.nvcc_version == "12.1"


def test_report_states_compiler_cmake_and_which_nvcc() -> None:
    facts = facts_from_report(
        "Collecting environment information...\n"
        "PyTorch version: 2.3.1+cu121\n"
        "GCC version: (Ubuntu 13.2.0-23ubuntu4) 13.2.0\n"
        "CMake version: version 3.28.3\n"
        "$ which nvcc\n"
        "/usr/local/cuda-12.1/bin/nvcc\n"
        "g++ (GCC) 13.2.1 20231011 (Red Hat 13.2.1-4)\n"
    )
    assert facts.toolchain.gcc == "13.2.0" and facts.toolchain.gxx == "13.2.1"
    assert facts.toolchain.cmake == "cmake 3.28.3"
    assert facts.cuda.path_nvcc == "/usr/local/cuda-12.1/bin/nvcc"
    assert facts.toolchain.missing is None  # a paste that does not mention ninja says nothing about it


def test_report_ninja_error_states_ninja_missing() -> None:
    facts = facts_from_report("RuntimeError: Ninja is required to load C++ extensions\n")
    assert facts.toolchain.missing == ["ninja"]


def test_report_shows_toolkits_and_echoed_paths_for_the_path_rules() -> None:
    facts = facts_from_report(
        "$ ls -d /usr/local/cuda*\n"
        "/usr/local/cuda  /usr/local/cuda-11.8  /usr/local/cuda-12.4\n"
        "user@box:~$ echo $PATH\n"
        "/usr/local/cuda-11.8/bin:/usr/local/cuda-12.4/bin:/usr/bin\n"
        "$ echo $CUDA_HOME\n"
        "/usr/local/cuda-12.4\n"
        "$ which nvcc\n"
        "/usr/local/cuda-11.8/bin/nvcc\n"
        "nvcc: NVIDIA (R) Cuda compiler driver\n"
        "Cuda compilation tools, release 11.8, V11.8.89\n"
        "error: /usr/local/cuda-11.8/include/crt/host_config.h: gcc versions later than 11 are not supported\n"
    )
    assert [(t.path, t.version) for t in facts.cuda.toolkits or []] == [
        ("/usr/local/cuda-11.8", "11.8"),
        ("/usr/local/cuda-12.4", "12.4"),
    ]
    assert facts.system.env == {
        "PATH": "/usr/local/cuda-11.8/bin:/usr/local/cuda-12.4/bin:/usr/bin",
        "CUDA_HOME": "/usr/local/cuda-12.4",
    }
    ids = {f.id for f in evaluate(facts)}
    assert {"cuda-path-shadowing", "cuda-toolkits-several", "nvcc-path-mismatch"} <= ids


@pytest.mark.parametrize(
    ("line", "gcc"),
    [
        ("gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)", "11.4.0"),
        ("- gcc (Ubuntu 13.2.0-23ubuntu4) 13.2.0", "13.2.0"),
        ("GCC version: Could not collect", None),
        ("Python 3.10.12 (main, Nov 20 2023, 15:14:05) [GCC 11.4.0] on linux", None),
    ],
)
def test_report_gcc_lines(line: str, gcc: str | None) -> None:
    facts = facts_from_report(f"PyTorch version: 2.3.1+cu121\n{line}\n")
    assert facts.toolchain.gcc == gcc
