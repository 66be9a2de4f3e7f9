"""Toolkit vs driver, GPU vs driver, PATH / LD_LIBRARY_PATH hygiene, host compiler and build tools, on
recorded facts of machines that cannot exist here (GPUs, drivers, several CUDA toolkits), and the
verification command every error finding carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.facts import Facts, Toolkit, load_facts
from envdoctor.findings import Finding, Manual, PipInstall, SetEnv, Severity
from envdoctor.knowledge import cuda as kb
from envdoctor.rules import all_rules, evaluate

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
OWN_IDS = {
    "toolkit-newer-than-driver",
    "gpu-newer-than-driver",
    "host-compiler-unsupported",
    "build-tools-missing",
    "cuda-path-shadowing",
    "nvcc-path-mismatch",
    "cuda-toolkits-several",
    "path-entries",
    "cuda-home-invalid",
}
E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def own(facts: Facts) -> list[Finding]:
    findings = evaluate(facts)
    assert not [f for f in findings if f.id == "internal-error"], findings
    return [f for f in findings if f.id in OWN_IDS]


def fixture(name: str) -> Facts:
    return load_facts(FIXTURES / f"{name}.json")


def summary(findings: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.id, f.severity) for f in findings]


# --- recorded facts -------------------------------------------------------------------------------


def test_fixture_nvcc130_on_driver470_is_an_error_naming_the_installed_toolkit_to_use() -> None:
    findings = own(fixture("toolkit_nvcc130_driver470_a100"))
    assert summary(findings) == [("toolkit-newer-than-driver", E), ("cuda-toolkits-several", INFO)]
    toolkit = findings[0]
    assert "CUDA 13.0" in toolkit.message and "470.82.01" in toolkit.message and ">= 580" in toolkit.message
    assert toolkit.evidence["driver supports CUDA"] == "11.4"
    # The driver runs CUDA <= 11.4, and an 11.4 toolkit is installed: that is the one to build with.
    assert toolkit.actions == [
        Manual(
            "Build with the installed CUDA 11.4 toolkit (CUDA_HOME=/usr/local/cuda-11.4), "
            "or upgrade the NVIDIA driver to >= 580.65.06."
        )
    ]
    assert toolkit.verify.startswith("nvidia-smi") and "nvcc --version" in toolkit.verify


def test_fixture_toolkit_below_the_floor_with_cuda_initialised_is_forward_compatibility() -> None:
    """vllm-project/vllm#7943: driver 470, CUDA 12.2 toolkit, A10s, and torch sees the GPUs (cuda-compat)."""
    facts = fixture("toolkit_nvcc130_driver470_a100")
    facts.torch.version, facts.torch.cuda, facts.torch.cuda_available = "2.4.0+cu121", "12.1", True
    toolkit = next(f for f in own(facts) if f.id == "toolkit-newer-than-driver")
    assert toolkit.severity is Severity.WARNING and "forward compatibility" in toolkit.message
    assert toolkit.evidence["torch.cuda_available"] is True


def test_fixture_nvcc128_on_driver535_runs_by_minor_version_compatibility_only() -> None:
    (finding,) = own(fixture("toolkit_nvcc128_driver535_a100"))
    assert summary([finding]) == [("toolkit-newer-than-driver", INFO)]
    assert "minor-version compatibility" in finding.message and "570.26" in finding.message


def test_fixture_rtx4090_on_driver470_names_the_first_ada_branch() -> None:
    facts = fixture("gpu_rtx4090_driver470")
    (finding,) = own(facts)
    assert summary([finding]) == [("gpu-newer-than-driver", E)]
    assert "RTX 4090 (Ada Lovelace, sm 8.9)" in finding.message and "R520" in finding.message
    assert finding.evidence["first driver"] == {"Ada Lovelace": "520.61.05"}
    assert finding.actions == [Manual("Upgrade the NVIDIA driver to >= 520.61.05 (R520 or a newer branch).")]
    assert finding.inferred  # the capability came from the GPU name in the paste


def test_fixture_cuda118_shadowing_cuda124_names_every_entry() -> None:
    findings = own(fixture("paths_cuda118_shadows_cuda124"))
    assert summary(findings) == [
        ("cuda-path-shadowing", W),
        ("cuda-path-shadowing", W),
        ("nvcc-path-mismatch", W),
        ("cuda-toolkits-several", INFO),
        ("path-entries", INFO),
    ]
    path, ld, nvcc, several, entries = findings
    assert (
        "CUDA 11.8 (/usr/local/cuda-11.8/bin) ahead of newer CUDA 12.4 (/usr/local/cuda-12.4/bin)"
        in path.message
    )
    assert path.evidence["system.env.PATH"] == [
        "/usr/local/cuda-11.8/bin",
        "/usr/local/cuda-12.4/bin",
        "/opt/cuda-11.2/bin",
    ]
    assert "/usr/local/cuda-11.8/lib64 (#1)" in ld.message and "nvidia/cudnn/lib (#2)" in ld.message
    assert ld.actions == [
        SetEnv("LD_LIBRARY_PATH", "/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib")
    ]
    assert "/usr/local/cuda-11.8/bin/nvcc (CUDA 11.8)" in nvcc.message
    assert "/usr/local/cuda-12.4/bin/nvcc (CUDA 12.4)" in nvcc.message
    assert "/usr/local/cuda-11.8 (11.8), /usr/local/cuda-12.4 (12.4)" in several.message
    assert entries.evidence == {
        "system.missing_dirs": ["PATH:/opt/cuda-11.2/bin"],
        "repeated": ["LD_LIBRARY_PATH:/usr/local/cuda-11.8/lib64"],
    }


def test_fixture_gcc13_with_cuda121_and_no_ninja() -> None:
    findings = own(fixture("toolchain_gcc13_cuda121_no_ninja"))
    assert summary(findings) == [("host-compiler-unsupported", W), ("build-tools-missing", W)]
    gcc, tools = findings
    assert "gcc 13.2.0" in gcc.message and "gcc <= 12" in gcc.message
    assert (
        gcc.fix
        == "Build with gcc-12: CC=gcc-12 CXX=g++-12 NVCC_CCBIN=gcc-12 (or use a CUDA >= 12.4 toolkit)."
    )
    assert tools.actions == [PipInstall(("ninja",))]


def test_fixture_host_compiler_chosen_by_variable_is_not_judged_by_the_gcc_on_path() -> None:
    facts = fixture("toolchain_gcc13_cuda121_no_ninja")
    for var in ("CC", "NVCC_CCBIN", "CUDAHOSTCXX"):
        facts.system.env = {**(facts.system.env or {}), var: "/usr/bin/gcc-12"}
        assert "host-compiler-unsupported" not in {f.id for f in own(facts)}


@pytest.mark.parametrize(
    "name",
    [
        "toolkit_nvcc130_driver470_a100",
        "toolkit_nvcc128_driver535_a100",
        "gpu_rtx4090_driver470",
        "paths_cuda118_shadows_cuda124",
        "toolchain_gcc13_cuda121_no_ninja",
    ],
)
def test_fixture_version2_files_round_trip(name: str) -> None:
    facts = fixture(name)
    assert facts.schema_version == 2
    assert Facts.from_dict(json.loads(facts.to_json())).to_dict() == facts.to_dict()


def test_fixture_version1_files_still_load_with_the_new_facts_unknown() -> None:
    facts = fixture("env_nvcc_118_torch_cu128")
    assert facts.schema_version == 1
    assert facts.toolchain.gcc is None and facts.toolchain.missing is None
    assert facts.cuda.toolkits is None and facts.system.missing_dirs is None
    assert Facts.from_dict(facts.to_dict()).to_dict() == facts.to_dict()


# --- the rules on small facts -----------------------------------------------------------------------


def _facts(**cuda) -> Facts:
    facts = Facts(origin="file")
    facts.nvidia.driver_version = cuda.pop("driver", None)
    for key, value in cuda.items():
        setattr(facts.cuda, key, value)
    return facts


@pytest.mark.parametrize(
    ("nvcc", "driver", "expected"),
    [
        ("12.4", "525.60.13", INFO),  # at the CUDA 12 floor: cubins run, PTX JIT needs 550.54.14
        ("12.4", "525.60.12", E),  # below the floor
        ("12.4", "550.54.14", None),  # the toolkit's own driver
        ("11.8", "470.82.01", INFO),
        ("10.2", "418.39", E),  # no minor-version compatibility before CUDA 11
        ("13.0", "580.65.06", None),
    ],
)
def test_toolkit_against_driver_counts_minor_version_compatibility(nvcc, driver, expected) -> None:
    findings = own(_facts(nvcc_version=nvcc, driver=driver))
    assert [f.severity for f in findings if f.id == "toolkit-newer-than-driver"] == (
        [expected] if expected else []
    )


def test_nvcc_through_a_symlink_to_the_same_toolkit_is_not_a_mismatch() -> None:
    facts = _facts(
        nvcc_path="/usr/local/cuda/bin/nvcc",
        nvcc_version="12.4",
        path_nvcc="/usr/local/cuda-12.4/bin/nvcc",
        toolkits=[Toolkit("/usr/local/cuda-12.4", "12.4")],
    )
    assert own(facts) == []


def test_newest_cuda_bin_first_is_only_info() -> None:
    facts = Facts(origin="file")
    facts.system.env = {"PATH": "/usr/local/cuda-12.4/bin:/usr/bin:/usr/local/cuda-11.8/bin"}
    (finding,) = own(facts)
    assert summary([finding]) == [("cuda-path-shadowing", INFO)]
    assert "(12.4, #1)" in finding.message and "(11.8, #3)" in finding.message


def test_wheel_folders_in_any_site_dir_are_not_system_libraries() -> None:
    facts = Facts(origin="file")
    wheels = "/usr/lib/python3/dist-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib"
    facts.system.env = {"LD_LIBRARY_PATH": f"{wheels}:/usr/lib/x86_64-linux-gnu/cudnn8"}
    assert own(facts) == []  # the system cuDNN comes after the wheels: they win
    facts.system.env = {"LD_LIBRARY_PATH": f"/usr/lib/x86_64-linux-gnu/cudnn8:{wheels}"}
    (finding,) = own(facts)
    assert "/usr/lib/x86_64-linux-gnu/cudnn8 (#1)" in finding.message and "cublas/lib (#2)" in finding.message


def test_build_tools_are_only_wanted_where_an_extension_build_is_likely() -> None:
    facts = fixture("toolchain_gcc13_cuda121_no_ninja")
    facts.cuda.nvcc_version = facts.cuda.nvcc_path = None
    assert "build-tools-missing" not in {f.id for f in own(facts)}
    facts = fixture("toolchain_gcc13_cuda121_no_ninja")
    facts.toolchain.missing = ["cmake"]
    (tools,) = [f for f in own(facts) if f.id == "build-tools-missing"]
    assert tools.severity is INFO and tools.actions == [PipInstall(("cmake",))]


def test_unknown_facts_raise_nothing() -> None:
    assert own(Facts(origin="report")) == []


# --- knowledge ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cuda", "max_gcc"),
    [
        ("10.2", 8),
        ("11.8", 11),
        ("12.2", 12),
        ("12.6", 13),
        ("12.9", 14),
        ("13.0", 15),
        ("13.3", 15),
        ("13.4", 16),
        ("13.5", 16),
        ("13.6", None),
    ],
)
def test_max_gcc_holds_from_its_row_to_the_next(cuda, max_gcc) -> None:
    known = kb.max_gcc_for_cuda(cuda)
    assert (known[0] if known else None) == max_gcc


@pytest.mark.parametrize(
    ("capability", "branch"),
    [
        ("7.5", "R410"),
        ("8.0", "R450"),
        ("8.6", "R455"),
        ("8.9", "R520"),
        ("9.0", "R520"),
        ("12.0", "R570"),
        ("10.3", "R575"),
        ("12.1", "R575"),  # ptxas 12.9 already targets sm_121
    ],
)
def test_first_driver_branch_per_architecture(capability, branch) -> None:
    arch = kb.gpu_arch(capability)
    assert arch is not None and arch.branch == branch
    assert kb.driver_at_least(kb.toolkit_driver_for_cuda(arch.first_cuda) or "0", arch.min_driver)


# --- verification commands ------------------------------------------------------------------------------


def test_every_rule_that_reports_errors_has_a_one_line_verify_command() -> None:
    for r in all_rules():
        if r.severity is Severity.ERROR or r.id == "cuda-lib-conflict":
            assert r.verify and "\n" not in r.verify, r.id


def test_fixture_verify_command_reaches_every_output_format() -> None:
    path = str(FIXTURES / "gpu_rtx4090_driver470.json")
    command = "nvidia-smi --query-gpu=name,driver_version --format=csv"
    text = invoke(["check", "--facts", path])
    markdown = invoke(["check", "--facts", path, "--format", "markdown"])
    payload = json.loads(invoke(["check", "--facts", path, "--json"]).stdout)
    assert text.exit_code == 1 and f"verify {command}" in text.stdout
    assert f"  - verify: `{command}`" in markdown.stdout
    assert payload["findings"][0]["verify"] == command


def test_fixture_cuda_home_written_like_path_or_without_nvcc() -> None:
    facts = Facts(origin="report")
    facts.system.env = {"CUDA_HOME": ":/usr/local/cuda-9.0"}
    facts.cuda.toolkits = [Toolkit("/usr/local/cuda-9.0", "9.0")]
    (finding,) = own(facts)
    assert summary([finding]) == [("cuda-home-invalid", W)]
    assert "is a list" in finding.message and finding.fix == "export CUDA_HOME=/usr/local/cuda-9.0"
    facts = fixture("toolchain_gcc13_cuda121_no_ninja")
    facts.system.env = {**(facts.system.env or {}), "CUDA_HOME": "/usr/local/cuda-11.0"}
    facts.system.missing_dirs = ["CUDA_HOME:/usr/local/cuda-11.0"]
    (finding,) = [f for f in own(facts) if f.id == "cuda-home-invalid"]
    assert "has no bin/nvcc" in finding.message
    assert finding.fix == "export CUDA_HOME=/usr/local/cuda-12.1"  # the toolkit of torch's CUDA 12.1
