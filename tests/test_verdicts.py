"""Verdicts a user can trust: torch that sees no GPU is an error, a crash is an error, marks never lie.

The collect_env cases are real text: pytorch/pytorch#115340 verbatim (up to its CPU block), and the
layout torch 2.7's collect_env prints for two H100s on driver 535 with CUDA unavailable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.explain import explain_text, match_text
from envdoctor.facts import Facts, Gpu, load_facts
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report
from envdoctor.render import area_lines
from envdoctor.rules import evaluate

HERE = Path(__file__).parent
FACTS = HERE / "fixtures" / "facts"
REPORTS = HERE / "reports_fixtures"
H100_FACTS = FACTS / "h100x2_torch270_cuda_unknown_error.json"
H100_REPORT = REPORTS / "collect_env_h100x2_cuda_unavailable.txt"
REAL_REPORT = REPORTS / "collect_env_pytorch115340_cuda_unknown_error.txt"
AREA_LINE = re.compile(r"^\[(?P<mark>.)\] (?P<title>[^—]+) — ", re.M)


def _areas(output: str) -> dict[str, str]:
    return {m.group("title").strip(): m.group("mark") for m in AREA_LINE.finditer(output)}


def _finding(findings, rule_id):
    (found,) = [f for f in findings if f.id == rule_id]
    return found


# --- 1. torch sees none of the GPUs ------------------------------------------------------------------


def test_fixture_facts_with_gpus_and_a_cuda_torch_that_sees_none_is_an_error():
    result = invoke(["check", "--facts", H100_FACTS])
    assert result.exit_code == 1, result.output
    assert _areas(result.output)["PyTorch"] == "✗"
    f = _finding(evaluate(load_facts(H100_FACTS)), "torch-sees-no-gpu")
    assert f.severity is Severity.ERROR
    assert f.message.startswith("torch sees 0 of 2 GPU(s)")
    assert "CUDA unknown error" in f.evidence["torch warning"]
    # NVSwitch H100s with "CUDA unknown error": the fabric manager first; the driver floor is ruled out.
    assert "fabricmanager" in f.evidence["probable causes"][0]
    ruled_out = " ".join(f.evidence["ruled out"])
    assert "driver too old (535.183.01 >= 525.60.13" in ruled_out
    assert "CPU build" in ruled_out and "CUDA_VISIBLE_DEVICES (unset)" in ruled_out


def test_collect_env_two_h100_cuda_unavailable_is_an_error_with_unknowns_left_open():
    result = invoke(["check", "--from-report", H100_REPORT])
    assert result.exit_code == 1, result.output
    assert _areas(result.output)["PyTorch"] == "✗"
    f = _finding(evaluate(facts_from_report(H100_REPORT.read_text())), "torch-sees-no-gpu")
    # A report that does not name CUDA_VISIBLE_DEVICES does not rule it out.
    assert any("CUDA_VISIBLE_DEVICES" in c for c in f.evidence["probable causes"])
    assert not any("CUDA_VISIBLE_DEVICES" in c for c in f.evidence["ruled out"])
    assert any(c.startswith("driver too old") for c in f.evidence["ruled out"])


def test_real_collect_env_with_cuda_unknown_error_carries_torchs_warning():
    facts = facts_from_report(REAL_REPORT.read_text())
    f = _finding(evaluate(facts), "torch-sees-no-gpu")
    assert "CUDA unknown error" in f.evidence["torch warning"]
    assert f.evidence["probable causes"][0].startswith("likely: the GPU or driver is in a bad state")
    assert "modprobe nvidia_uvm" in f.fix
    assert invoke(["check", "--from-report", REAL_REPORT]).exit_code == 1


def test_fixture_cuda_visible_devices_and_an_old_driver_rank_first_when_the_facts_prove_them():
    facts = load_facts(H100_FACTS)
    facts.torch.warnings = []
    facts.system.env = {"CUDA_VISIBLE_DEVICES": ""}
    f = _finding(evaluate(facts), "torch-sees-no-gpu")
    assert f.evidence["probable causes"][0] == "likely: CUDA_VISIBLE_DEVICES='' hides every GPU"
    facts.system.env = {}
    facts.nvidia.driver_version = "470.57.02"
    f = _finding(evaluate(facts), "torch-sees-no-gpu")
    assert f.evidence["probable causes"][0].startswith("likely: driver 470.57.02 is below 525.60.13")


def test_fixture_a_cpu_build_or_a_torch_that_sees_the_gpus_is_not_this_finding():
    facts = load_facts(H100_FACTS)
    facts.torch.cuda_available, facts.torch.device_count = True, 2
    assert not [f for f in evaluate(facts) if f.id == "torch-sees-no-gpu"]
    facts = load_facts(H100_FACTS)
    facts.torch.version, facts.torch.cuda = "2.7.0+cpu", None
    ids = {f.id for f in evaluate(facts)}
    assert "torch-cpu-build" in ids and "torch-sees-no-gpu" not in ids


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: No CUDA GPUs are available",
        "UserWarning: CUDA initialization: CUDA unknown error - this may be due to an incorrectly set up "
        "environment, e.g. changing env variable CUDA_VISIBLE_DEVICES after program start.",
    ],
)
def test_explain_knows_torch_seeing_no_gpu(message):
    result = invoke(["explain", message, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["candidates"][0]["id"] == "torch-sees-no-gpu"


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        ("RuntimeError: cuDNN error: CUDNN_STATUS_NOT_INITIALIZED", "cudnn-not-initialized"),
        (
            "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
            "ProcessGroupNCCL.cpp:1333, internal error - please report this issue to the NCCL developers",
            "nccl-internal-error",
        ),
        ("ncclInternalError: Internal check failed.", "nccl-internal-error"),
    ],
)
def test_explain_knows_cudnn_and_nccl_internal_errors_and_exits_1(message, signature):
    result = invoke(["explain", message, "--json"])
    assert result.exit_code == 1
    notes = json.loads(result.stdout)["recognised_without_diagnosis"]
    assert [n["signature"] for n in notes] == [signature]
    assert notes[0]["severity"] == "error"


# --- 2. a crash is an error; a timed-out probe is never green ------------------------------------------


def test_explain_bf16_crash_on_a_t4_is_an_error_not_emulated_info():
    text = (
        "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. "
        "Your Tesla T4 GPU has compute capability 7.5."
    )
    result = invoke(["explain", text])
    assert result.exit_code == 1, result.output
    top = explain_text(text).candidates[0].finding
    assert (top.id, top.severity) == ("bf16-unsupported", Severity.ERROR)
    assert "emulated" not in top.message and "Tesla T4" in top.message
    assert top.fix.startswith("Use float16 autocast")  # the rule's fix is kept


def test_explain_nccl_unhandled_system_error_raised_is_an_error():
    result = invoke(["explain", "RuntimeError: NCCL Error 2: unhandled system error", "--json"])
    assert result.exit_code == 1
    top = json.loads(result.stdout)["candidates"][0]
    assert top["finding"]["severity"] == "error"


@pytest.mark.parametrize(
    "message",
    [
        "TypeError: build() got an unexpected keyword argument 'lr'",
        "TypeError: Trainer.log() takes 2 positional arguments but 3 were given",
    ],
)
def test_a_raised_message_users_own_code_also_raises_stays_a_warning(message):
    """A TypeError about arguments crashes the program, but a bug in the user's own code raises it as
    often as a package mismatch: the guess is a warning (exit 0) that says both, never an error."""
    traceback = f'Traceback (most recent call last):\n  File "train.py", line 9, in <module>\n{message}'
    result = invoke(["explain", traceback, "--json"])
    assert result.exit_code == 0, result.stdout
    top = json.loads(result.stdout)["candidates"][0]
    assert (top["finding"]["id"], top["finding"]["severity"]) == ("requirement-conflict", "warning")
    assert "your own code" in top["finding"]["message"]


def test_a_warning_line_is_not_a_crash_and_a_raised_one_is():
    (warned,) = match_text("UserWarning: CUDA initialization: CUDA unknown error - Setting devices to zero")
    (raised,) = match_text("RuntimeError: CUDA unknown error")
    assert (warned.crash, raised.crash) == (False, True)
    (plain,) = match_text(
        "NCCL WARN Error while creating shared memory segment nccl-shm-recv-0 (size 9637888)"
    )
    assert plain.crash is False and plain.severity is plain.signature.severity


def test_fixture_hanging_import_torch_is_an_error_and_never_green():
    facts = load_facts(FACTS / "healthy_h200.json")
    facts.torch.status, facts.torch.error, facts.torch.version = "timeout", "timed out after 60 s", None
    f = _finding(evaluate(facts), "torch-import-error")
    assert f.severity is Severity.ERROR
    marks = {line.key: line.status for line in area_lines(facts, evaluate(facts))}
    assert marks["torch"] is Severity.ERROR


def test_fixture_probe_that_timed_out_is_never_shown_fine():
    facts = load_facts(FACTS / "healthy_h200.json")
    facts.nvidia.error, facts.nvidia.error_detail, facts.nvidia.gpus = "timeout", "nvidia-smi hung", None
    facts.docker.status = "error"
    facts.probe_errors = {"cuda": "timed out after 10 s"}
    lines = {line.key: line.status for line in area_lines(facts, [])}
    assert lines["nvidia"] == lines["cuda"] == lines["container"] == "crashed"


# --- 3. marks and summaries that say what the facts say ------------------------------------------------


def _cpu_box_facts() -> Facts:
    facts = load_facts(FACTS / "healthy_h200.json")
    facts.nvidia.error, facts.nvidia.error_detail = "driver-missing", "NVML library not found"
    facts.nvidia.gpus = facts.nvidia.driver_version = facts.nvidia.cuda_driver_version = None
    facts.torch.version, facts.torch.cuda, facts.torch.cuda_available = "2.13.0+cpu", None, False
    facts.torch.devices, facts.torch.device_count, facts.torch.arch_list = [], 0, None
    facts.torch.scaled_mm = None
    facts.packages.torch_build = {"version": "2.13.0+cpu", "cuda": None, "hip": None, "git_version": None}
    return facts


def test_fixture_missing_driver_is_never_a_check_mark(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(_cpu_box_facts().to_json())
    out = invoke(["check", "--facts", path]).output
    assert _areas(out)["NVIDIA driver & GPUs"] != "✓"
    assert "i info driver-missing" in out and "✓ info" not in out


def test_fixture_info_findings_have_their_own_mark():
    result = invoke(["check", "--from-report", H100_REPORT])
    assert "i info nvcc-mismatch" in result.output
    assert "✓ info" not in result.output
    assert _areas(result.output)["CUDA toolkit & libraries"] == "i"


def test_fixture_rtx5090_without_kernels_is_not_described_as_usable():
    out = invoke(["check", "--facts", FACTS / "rtx5090_torch260_cu126.json"]).output
    assert "usable" not in out
    assert _areas(out)["PyTorch"] == "✗"


def test_fixture_numpy_abi_cites_the_numpy_version_it_read_and_the_summary_names_numpy(tmp_path):
    facts = load_facts(FACTS / "env_numpy2_torch22.json")
    del facts.packages.versions["numpy"]
    facts.torch.numpy_version = "2.1.2"
    f = _finding(evaluate(facts), "numpy-abi")
    assert f.evidence["torch.numpy_version"] == "2.1.2" and "packages.versions.numpy" not in f.evidence
    summary = {line.key: line.summary for line in area_lines(facts, [f])}["packages"]
    assert "numpy 2.1.2" in summary and "no tracked ML package" not in summary


def test_fixture_cuda_home_is_shown_only_when_the_variable_is_set():
    facts = load_facts(FACTS / "healthy_h200.json")
    facts.cuda.cuda_home, facts.system.env = "/usr/local/cuda", {}
    summary = {line.key: line.summary for line in area_lines(facts, [])}["cuda"]
    assert "CUDA_HOME" not in summary and "toolkit at /usr/local/cuda" in summary
    facts.system.env = {"CUDA_HOME": "/opt/cuda-12.8"}
    summary = {line.key: line.summary for line in area_lines(facts, [])}["cuda"]
    assert "CUDA_HOME=/opt/cuda-12.8" in summary


def test_report_nvidia_ml_py_is_not_a_cuda_wheel():
    facts = facts_from_report("[pip3] nvidia-ml-py==12.560.30\n[pip3] nvidia-cublas-cu12==12.4.5.8\n")
    assert facts.packages.nvidia_wheels == {"nvidia-cublas-cu12": "12.4.5.8"}


def _resolve(data, path: str) -> bool:
    """Whether a dotted fact path ('nvidia.gpus[0].name') names a value present in the facts."""
    node = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            if not isinstance(node, list) or int(part[1:-1]) >= len(node):
                return False
            node = node[int(part[1:-1])]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


FACT_SECTIONS = ("system.", "python.", "nvidia.", "cuda.", "packages.", "torch.", "docker.")


@pytest.mark.parametrize("path", sorted(FACTS.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_no_check_mark_next_to_a_finding_and_evidence_cites_real_facts(path):
    facts = load_facts(path)
    findings = evaluate(facts)
    for line in area_lines(facts, findings):
        if line.status == "ok":
            assert not line.crashed
    data = facts.to_dict()
    for f in findings:
        for key in f.evidence:
            if key.startswith(FACT_SECTIONS):
                assert _resolve(data, key), f"{f.id} cites {key}, which is not in the facts"


def test_fixture_gpu_count_from_a_report_counts_only_nvidia_gpus():
    facts = Facts(origin="report")
    facts.nvidia.gpus = [Gpu(0, "NVIDIA H100 80GB HBM3")]
    facts.torch.cuda_available, facts.torch.version, facts.torch.cuda = False, "2.7.0+cu128", "12.8"
    f = _finding(evaluate(facts), "torch-sees-no-gpu")
    assert f.message.startswith("torch sees 0 of 1 GPU(s)")


def test_report_area_it_says_nothing_about_is_not_a_check_mark():
    out = invoke(["check", "--from-report", REAL_REPORT]).output
    assert _areas(out)["Docker / container"] == "-"  # the report does not cover it: unknown, not fine
