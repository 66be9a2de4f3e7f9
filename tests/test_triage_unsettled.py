"""A paste that leaves the cause undiagnosed: ``check --from-report`` says what it read and asks for the
one report that would settle it, in text, JSON and markdown, as ``explain`` does (one helper)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_helpers import invoke

CORPUS = Path(__file__).parent / "corpus"


def _paste(case: str) -> str:
    """A real paste from the corpus: the report with its error lines, as the user posted it."""
    data = yaml.safe_load((CORPUS / f"{case}.yaml").read_text(encoding="utf-8"))
    return data["report"] + "\n" + data["error"]


# An RTX 5080 laptop where ComfyUI fails to start; the driver version is only in a screenshot.
UNDIAGNOSED = _paste("comfyui-easy-install-116-rtx5080-laptop-driver-57324")
COLLECT_ENV = "python -m torch.utils.collect_env"


def test_check_from_report_text_says_what_it_read_and_what_would_settle_it():
    result = invoke(["check", "--from-report", "-"], input=UNDIAGNOSED)
    assert result.exit_code == 0, result.output  # nothing diagnosed as an error
    tail = result.output.split("Not diagnosed", 1)[1]
    assert "read: nvidia.gpus: NVIDIA GeForce RTX 5080 (stated in prose)" in tail
    assert f"To settle it, paste the output of `{COLLECT_ENV}`" in tail


def test_check_from_report_json_and_markdown_carry_the_same_request_as_explain():
    doc = json.loads(invoke(["check", "--from-report", "-", "--json"], input=UNDIAGNOSED).output)
    assert "nvidia.gpus: NVIDIA GeForce RTX 5080 (stated in prose)" in doc["recognised"]
    assert COLLECT_ENV in doc["ask_for"]
    explained = json.loads(invoke(["explain", "-", "--json"], input=UNDIAGNOSED).output)
    assert (explained["recognised"], explained["ask_for"]) == (doc["recognised"], doc["ask_for"])
    markdown = invoke(["check", "--from-report", "-", "--format", "markdown"], input=UNDIAGNOSED).output
    assert "### Not diagnosed" in markdown
    assert "- nvidia.gpus: NVIDIA GeForce RTX 5080 (stated in prose)" in markdown
    assert f"To settle it, paste the output of `{COLLECT_ENV}`" in markdown


def test_a_diagnosed_paste_asks_for_nothing():
    paste = _paste("comfyui-6823-rtx5080-torch260-cu126-startup-log")
    result = invoke(["check", "--from-report", "-"], input=paste)
    assert result.exit_code == 1 and "arch-not-in-wheel" in result.output
    assert "Not diagnosed" not in result.output
    doc = json.loads(invoke(["check", "--from-report", "-", "--json"], input=paste).output)
    assert "ask_for" not in doc and "recognised" not in doc


def test_a_live_check_never_asks_for_a_report():
    facts = Path(__file__).parent / "fixtures" / "facts"
    path = sorted(facts.glob("*.json"))[0]
    doc = json.loads(invoke(["check", "--facts", path, "--json"]).output)
    assert "ask_for" not in doc


def test_mcp_diagnose_report_carries_the_same_request():
    from envdoctor import mcp_server

    doc = mcp_server.diagnose_report(UNDIAGNOSED)
    assert doc["has_errors"] is False
    assert "nvidia.gpus: NVIDIA GeForce RTX 5080 (stated in prose)" in doc["recognised"]
    assert COLLECT_ENV in doc["ask_for"]
