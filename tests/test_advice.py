"""check's advice is fix's plan: the same commands, for the same interpreter, pasteable as printed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from cli_helpers import invoke

from envdoctor.advice import advise
from envdoctor.facts import load_facts
from envdoctor.fix.planner import build_plan
from envdoctor.fix.render import render_plan
from envdoctor.rules import evaluate

FACTS = Path(__file__).parent / "fixtures" / "facts"
REPORTS = Path(__file__).parent / "reports_fixtures"
FIX_LINE = re.compile(r"^    fix (?P<line>.*)$", re.M)


def _fix_lines(output: str) -> list[str]:
    return [m.group("line") for m in FIX_LINE.finditer(output)]


def test_fixture_rtx5090_check_moves_torchvision_and_torchaudio_like_fix():
    path = FACTS / "fix_rtx5090_torch260_vision_audio.json"
    check = invoke(["check", "--facts", path])
    (line,) = _fix_lines(check.output)
    words = shlex.split(line)
    assert words[:4] == ["/opt/venv/bin/python", "-m", "pip", "install"]
    assert {"torch==2.7.1", "torchvision==0.22.1+cu128", "torchaudio==2.7.1+cu128"} <= set(words)
    fix = invoke(["fix", "--facts", path])
    assert line in fix.output  # the very command of fix's plan


def test_fixture_a_constrained_step_is_pasteable_with_its_torch_pin():
    check = invoke(["check", "--facts", FACTS / "env_numpy2_torch22.json"])
    (line,) = _fix_lines(check.output)
    assert line == (
        "printf 'torch==2.2.2+cu121\\n' | /opt/venv/bin/python -m pip install --no-input -c /dev/stdin 'numpy<2'"
    )
    assert "<constraints>" not in check.output


def test_fixture_a_step_the_plan_drops_is_not_printed_as_a_command():
    path = FACTS / "env_torch_wheels_missing.json"
    lines = _fix_lines(invoke(["check", "--facts", path]).output)
    assert any(line.startswith("fixed by the plan's torch step") for line in lines)
    assert not any(line.startswith("pip ") for line in lines)
    plan = render_plan(build_plan(evaluate(load_facts(path)), load_facts(path)))
    assert "dropped cuda-lib-conflict" in plan


def test_check_python_other_interpreter_prints_that_interpreters_pip(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    result = invoke(["check", "--python", venv])
    lines = [line for line in _fix_lines(result.output) if " -m pip " in line]
    assert lines, result.output
    assert all(shlex.split(line)[0] == str(venv / "bin" / "python") for line in lines)
    assert f"`envdoctor fix --python {venv}`" in result.output or "--include-warnings" in result.output


def test_fixture_hint_only_when_fix_has_a_plan_and_the_right_one():
    healthy = invoke(["check", "--facts", FACTS / "healthy_h200.json"])
    assert healthy.exit_code == 0 and "envdoctor fix" not in healthy.output
    report = invoke(["check", "--from-report", REPORTS / "collect_env_rtx5090_cu121.txt"])
    assert "--from-report" not in report.output.split("error(s)")[-1]
    assert "in the reported environment" in report.output
    facts = invoke(["check", "--facts", FACTS / "rtx5090_torch260_cu126.json"])
    assert f"`envdoctor fix --facts {FACTS / 'rtx5090_torch260_cu126.json'}` shows the plan." in facts.output
    assert "--apply" not in facts.output  # fix refuses --apply on a facts file


def test_fixture_warning_steps_point_to_include_warnings():
    facts = load_facts(FACTS / "env_nvcc_118_torch_cu128.json")
    findings = evaluate(facts)
    assert findings and all(f.severity.value != "error" for f in findings)
    advice = advise(facts, findings, "envdoctor fix")
    if any(a.kind == "manual" for f in findings for a in f.actions):
        assert advice.hint == "`envdoctor fix` shows the plan; add --apply to run it."
    else:
        assert advice.hint is not None and "--include-warnings" in advice.hint
