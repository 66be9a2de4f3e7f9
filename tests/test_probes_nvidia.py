"""The NVIDIA probe. No driver exists here: NVML errors are real pynvml exception objects and
nvidia-smi is a script on PATH replaying recorded output (tests named test_fixture_*)."""

from __future__ import annotations

import time
from pathlib import Path

import pynvml
import pytest

from envdoctor.probes import collect, nvidia

# nvidia-smi's output on a two-GPU H100 node (driver 550.54.15, CUDA 12.4), the second GPU in MIG mode.
H100_CSV = (
    "0, NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, Disabled\n"
    "1, NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, Enabled\n"
)
H100_BANNER = "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |\n"


def fake_smi(tmp_path: Path, body: str) -> Path:
    """An executable ``nvidia-smi`` shell script in its own directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(0o755)
    return smi


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "driver-library-mismatch"),
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "driver-missing"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver-missing"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, "error"),
        (pynvml.NVML_ERROR_TIMEOUT, "timeout"),
    ],
)
def test_fixture_nvml_errors_map_to_kinds(code, kind) -> None:
    assert nvidia.nvml_error_kind(pynvml.NVMLError(code)) == kind


def test_nvml_cuda_version_integer() -> None:
    assert nvidia.cuda_version_string(12040) == "12.4"
    assert nvidia.cuda_version_string(13000) == "13.0"


def test_fixture_nvidia_smi_h100_recorded_output(tmp_path) -> None:
    (tmp_path / "query.csv").write_text(H100_CSV)
    (tmp_path / "banner.txt").write_text(H100_BANNER)
    smi = fake_smi(
        tmp_path,
        f'case "$1" in --query-gpu=*) cat {tmp_path}/query.csv;; *) cat {tmp_path}/banner.txt;; esac\n',
    )
    facts = nvidia.probe_smi(str(smi), 5)
    assert (facts.source, facts.error, facts.driver_version, facts.cuda_driver_version) == (
        "nvidia-smi",
        None,
        "550.54.15",
        "12.4",
    )
    assert [(g.index, g.name, g.compute_capability, g.memory_total_mib, g.mig_mode) for g in facts.gpus] == [
        (0, "NVIDIA H100 80GB HBM3", "9.0", 81559, False),
        (1, "NVIDIA H100 80GB HBM3", "9.0", 81559, True),
    ]


def test_fixture_nvidia_smi_old_driver_without_compute_cap(tmp_path) -> None:
    smi = fake_smi(
        tmp_path,
        'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\'; exit 2;;\n'
        '--query-gpu=*) echo "0, Tesla T4, 470.82.01, 15109, [N/A]";;\n'
        '*) echo "Driver Version: 470.82.01    CUDA Version: 11.4";; esac\n',
    )
    facts = nvidia.probe_smi(str(smi), 5)
    assert facts.driver_version == "470.82.01" and facts.cuda_driver_version == "11.4"
    assert [(g.name, g.compute_capability, g.mig_mode) for g in facts.gpus] == [("Tesla T4", None, None)]


@pytest.mark.parametrize(
    ("output", "kind"),
    [
        ("Failed to initialize NVML: Driver/library version mismatch", "driver-library-mismatch"),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "driver-missing"),
        ("No devices were found", "no-device"),
        ("Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error", "error"),
    ],
)
def test_fixture_nvidia_smi_failures_are_mapped(tmp_path, output, kind) -> None:
    (tmp_path / "out.txt").write_text(output + "\n")
    smi = fake_smi(tmp_path, f"cat {tmp_path}/out.txt\nexit 9\n")
    facts = nvidia.probe_smi(str(smi), 5)
    assert (facts.error, facts.error_detail) == (kind, output)


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="a real driver answers NVML first")
def test_hung_nvidia_smi_fallback_times_out_and_check_returns(tmp_path, monkeypatch) -> None:
    smi = fake_smi(tmp_path, "sleep 30\n")  # a shell whose child keeps the pipe open
    monkeypatch.setenv("PATH", f"{smi.parent}:{__import__('os').environ['PATH']}")
    started = time.monotonic()
    facts = collect(quick=True, probe_timeout=1)
    assert time.monotonic() - started < 8
    assert facts.nvidia.source == "nvidia-smi"
    assert facts.nvidia.error == "timeout"
    assert facts.python.version and facts.probe_errors == {}
