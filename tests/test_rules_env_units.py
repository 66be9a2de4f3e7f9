"""The allocator-config parser against torch's own parser, the ecosystem tables, and edge cases of
the package/runtime rules built from small Facts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from packaging.specifiers import SpecifierSet

from envdoctor.facts import Facts, Gpu, LibraryFile, PackagesFacts, Requirement
from envdoctor.findings import PipInstall, SetEnv, Severity
from envdoctor.knowledge import load_table
from envdoctor.knowledge.ecosystem import (
    companion_for_torch,
    companion_pin,
    cuda_library,
    last_release_before_floor,
    torch_floor,
)
from envdoctor.rules import get_rule
from envdoctor.rules.runtime import parse_alloc_conf, visible_gpu_count

# Values torch's generic parser (c10/core/AllocatorConfig.cpp) accepts or rejects. CUDA-only keys
# are left out: a CPU build of torch has no CUDA parser to compare with.
ALLOC_CASES = [
    "expandable_segments:True",
    "expandable_segments:true",
    "expandable_segments:1",
    "max_split_size_mb:512",
    "max_split_size_mb:19",
    "max_split_size_mb:20",
    "max_split_size_mb=512",
    "max_split_size_mb:",
    "garbage_collection_threshold:0.6",
    "garbage_collection_threshold:1.5",
    "garbage_collection_threshold:0",
    "roundup_power2_divisions:4",
    "roundup_power2_divisions:3",
    "roundup_power2_divisions:[256:1,512:2,>:8]",
    "roundup_power2_divisions:[255:1]",
    "roundup_power2_divisions:[256:3]",
    "expandable_segments:True,max_split_size_mb:128",
    "max_split_size_mb:128 , expandable_segments:True",
    "max_split_size_mb:128;expandable_segments:True",
    "expandable_segments:True:False",
    "pinned_use_background_threads:True",
    "max_non_split_rounding_mb:512",
]


def _torch_verdicts() -> dict[str, bool]:
    """Each case through ``torch._C._accelerator_setAllocatorSettings`` in a fresh process."""
    code = (
        "import json, sys, torch\n"
        "out = {}\n"
        "for case in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        torch._C._accelerator_setAllocatorSettings(case); out[case] = True\n"
        "    except Exception:\n"
        "        out[case] = False\n"
        "    torch._C._accelerator_setAllocatorSettings('')\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(ALLOC_CASES)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.torch
def test_alloc_conf_parser_agrees_with_real_torch() -> None:
    pytest.importorskip("torch")
    verdicts = _torch_verdicts()
    assert not verdicts["expandable_segments:true"] and verdicts["expandable_segments:True"]
    for case, torch_ok in verdicts.items():
        assert (not parse_alloc_conf(case).problems) == torch_ok, case


def test_alloc_conf_rule_single_variable_keeps_valid_entries() -> None:
    facts = Facts()
    facts.system.env = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128,foo:1,expandable_segments:True"}
    (finding,) = get_rule("alloc-conf-invalid").check(facts)
    assert finding.severity is Severity.ERROR and "unknown key 'foo'" in finding.message
    assert finding.actions == [
        SetEnv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128,expandable_segments:True")
    ]


def test_alloc_conf_rule_nothing_valid_unsets_and_async_info() -> None:
    facts = Facts()
    facts.system.env = {"PYTORCH_ALLOC_CONF": "expandable_segments=True"}
    (bad,) = get_rule("alloc-conf-invalid").check(facts)
    assert bad.actions == [SetEnv("PYTORCH_ALLOC_CONF", None)] and bad.fix == "unset PYTORCH_ALLOC_CONF"
    facts.system.env = {"PYTORCH_ALLOC_CONF": "backend:cudaMallocAsync,max_split_size_mb:256"}
    (info,) = get_rule("alloc-conf-invalid").check(facts)
    assert info.severity is Severity.INFO and "max_split_size_mb" in info.message
    facts.system.env = {
        "PYTORCH_ALLOC_CONF": "expandable_segments:True",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments: True",
    }
    assert list(get_rule("alloc-conf-invalid").check(facts)) == []  # same value, spaces aside


@pytest.mark.parametrize(
    ("value", "gpus", "visible"),
    [
        ("", 2, 0),
        ("-1", 2, 0),
        ("2", 2, 0),
        ("1,0", 2, 2),
        ("0,5,1", 2, 1),
        ("none", 1, 0),
        ("GPU-8f2e", 1, None),
    ],
)
def test_visible_gpu_count_follows_cuda_rules(value: str, gpus: int, visible: int | None) -> None:
    assert visible_gpu_count(value, gpus) == visible


def test_cuda_visible_devices_needs_known_gpus() -> None:
    facts = Facts()
    facts.system.env = {"CUDA_VISIBLE_DEVICES": "-1"}
    assert list(get_rule("cuda-visible-devices-empty").check(facts)) == []  # GPUs unknown
    facts.nvidia.gpus = [Gpu(index=0, name="NVIDIA L4")]
    (finding,) = get_rule("cuda-visible-devices-empty").check(facts)
    assert finding.severity is Severity.WARNING


def test_tables_load_with_sources_and_pins_parse() -> None:
    for name in ("torch_companions", "torch_floors", "cuda_libraries"):
        assert load_table(name)
    for row in load_table("torch_companions") + load_table("torch_floors"):
        SpecifierSet(row["torch"])
    minors = {f"2.{n}" for n in range(15) if companion_for_torch("torchvision", f"2.{n}.0") is not None}
    assert minors == {f"2.{n}" for n in range(15)}


def test_companion_lookups() -> None:
    assert companion_pin("torchvision", "0.21.0+cu126").torch == "==2.6.0"
    assert companion_pin("xformers", "0.0.29.post3").torch == "==2.6.0"
    assert companion_for_torch("torchvision", "2.9.1+cu128").version == "0.24.1"
    # torchaudio 2.11 is built on the stable ABI: it serves later torch releases too.
    assert companion_for_torch("torchaudio", "2.13.0+cu130").version == "2.11.1"
    assert companion_for_torch("torchvision", "1.5.0") is None


def test_floor_lookups() -> None:
    assert torch_floor("transformers", "4.47.0") is None
    assert torch_floor("transformers", "4.52.3").torch == ">=2.1"
    assert torch_floor("transformers", "5.24.0").torch == ">=2.6"
    assert torch_floor("numpy", "2.0.0").torch == ">=2.3"
    assert torch_floor("numpy", "1.26.4") is None
    assert last_release_before_floor("transformers", "2.4.1") == "5.15"
    assert last_release_before_floor("transformers", "2.9.0") is None


@pytest.mark.parametrize(
    ("soname", "family", "major"),
    [
        ("libcudnn.so.9", "cudnn", 9),
        ("libcudnn_cnn_infer.so.8", "cudnn", 8),
        ("libcublasLt.so.12", "cublas", 12),
        ("libnvJitLink.so.12", "nvjitlink", 12),
        ("libnccl.so.2", "nccl", 2),
    ],
)
def test_cuda_library_families(soname: str, family: str, major: int) -> None:
    lib, got = cuda_library(soname)
    assert (lib.family, got) == (family, major)
    assert cuda_library("libcusparseLt.so.0") is None


def _torch_env(torch: str, **versions: str) -> Facts:
    facts = Facts()
    facts.packages = PackagesFacts(versions={"torch": torch, **versions}, nvidia_wheels={}, unmet=[])
    return facts


def test_transformers_rule_sees_ngc_prerelease_as_older() -> None:
    """NGC's 2.4.0a0 build is below transformers 5.1's torch>=2.4 floor, as transformers itself decides."""
    (finding,) = get_rule("transformers-torch-incompat").check(
        _torch_env("2.4.0a0+3bcc3cddb5.nv24.07", transformers="5.1.0")
    )
    assert finding.actions == [PipInstall(("transformers<5.1",))]
    assert (
        list(get_rule("transformers-torch-incompat").check(_torch_env("2.4.1+cu121", transformers="5.1.0")))
        == []
    )


def test_numpy_rule_quiet_for_supported_pairs() -> None:
    assert list(get_rule("numpy-abi").check(_torch_env("2.3.0", numpy="2.0.1"))) == []
    assert list(get_rule("numpy-abi").check(_torch_env("2.2.2", numpy="1.26.4"))) == []


def test_requirement_conflict_on_torch_is_manual() -> None:
    facts = _torch_env("1.13.1")
    facts.packages.unmet = [Requirement("accelerate", "1.5.0", "torch>=2.0.0", "1.13.1")]
    (finding,) = get_rule("requirement-conflict").check(facts)
    assert finding.actions[0].kind == "manual" and "torch>=2.0.0" in finding.message


def test_same_soname_other_version_on_ld_library_path() -> None:
    facts = _torch_env("2.5.1", **{})
    facts.packages.nvidia_wheels = {"nvidia-nvjitlink-cu12": "12.4.127"}
    facts.packages.torch_build = {"version": "2.5.1", "cuda": "12.4"}
    facts.system.env = {"LD_LIBRARY_PATH": "/usr/local/cuda-12.1/lib64"}
    path = "/usr/local/cuda-12.1/lib64/libnvJitLink.so.12"
    facts.cuda.libraries = [LibraryFile("libnvJitLink.so.12", path, "LD_LIBRARY_PATH", "12.1.105")]
    (finding,) = get_rule("cuda-lib-conflict").check(facts)
    assert "shadows nvidia-nvjitlink-cu12 12.4.127" in finding.message
    assert finding.actions == [SetEnv("LD_LIBRARY_PATH", None)]
    facts.cuda.libraries = []
    (info,) = get_rule("cuda-lib-conflict").check(facts)  # toolkit dir, no differing library seen
    assert info.severity is Severity.INFO
