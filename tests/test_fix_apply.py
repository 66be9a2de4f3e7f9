"""``envdoctor fix --apply`` on real throwaway venvs with real pip: planted conflicts get fixed,
a failing step or a worse re-check rolls back to the exact previous set of distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.findings import Finding, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.fix.activation import read_activation
from envdoctor.fix.apply import apply_plan, count_errors
from envdoctor.fix.planner import build_plan
from envdoctor.fix.refusals import live_refusals
from envdoctor.fix.render import render_result
from envdoctor.fix.target import conda_meta_packages, inspect_target
from envdoctor.probes import collect
from envdoctor.rules import evaluate
from tests.fix_helpers import freeze, make_venv, pip

BAD_ALLOC = "garbage_collection_threshold:1.5"  # must lie in (0, 1)
REPO = Path(__file__).resolve().parent.parent


def _ids(python: Path, env: dict[str, str] | None = None) -> set[str]:
    result = invoke(["check", "--python", str(python), "--json"], env=env)
    return {f["id"] for f in json.loads(result.stdout)["findings"]}


@pytest.mark.slow
def test_fix_apply_resolves_planted_conflicts_then_is_idempotent_and_rolls_back(tmp_path):
    py = make_venv(tmp_path / "venv", system_site=True)  # sees this machine's torch 2.13.0+cpu
    pip(py, "install", "rich==13.7.1", "requests==2.25.1")
    pip(py, "install", "pygments==2.12.0", "idna==3.7")  # below rich's floor / above requests' ceiling
    planted = freeze(py)
    env = {"PYTORCH_CUDA_ALLOC_CONF": BAD_ALLOC}
    before = invoke(["check", "--python", str(py), "--json", "--quick"], env=env)
    found = json.loads(before.stdout)["findings"]
    conflicts = {f["message"] for f in found if f["id"] == "requirement-conflict"}
    assert any("requests 2.25.1 requires idna<3,>=2.5" in m for m in conflicts)
    assert any("rich 13.7.1 requires pygments" in m for m in conflicts)
    alloc_ids = {f["id"] for f in found if "PYTORCH_CUDA_ALLOC_CONF" in json.dumps(f["actions"])}
    assert alloc_ids

    result = invoke(["fix", "--apply", "--python", str(py), "--quick"], env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Applied." in result.stdout and "snapshot:" in result.stdout
    after = freeze(py)
    assert "idna==2.10" in after and "Pygments==2." in after and "Pygments==2.12.0" not in after

    # The activation file fixes the variable when sourced by bash; check is then clean for those ids.
    activation = tmp_path / "venv" / "envdoctor-activate.sh"
    script = (
        f"export PYTORCH_CUDA_ALLOC_CONF={BAD_ALLOC}; . {activation}; "
        f'echo "value=${{PYTORCH_CUDA_ALLOC_CONF-<unset>}}"; '
        f"{sys.executable} -m envdoctor.cli check --python {py} --json --quick"
    )
    sourced = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180, cwd=REPO)
    value_line, report = sourced.stdout.split("\n", 1)
    assert value_line != f"value={BAD_ALLOC}"
    ids = {f["id"] for f in json.loads(report)["findings"]}
    assert "requirement-conflict" not in ids and not (alloc_ids & ids)

    again = invoke(["fix", "--apply", "--python", str(py), "--quick"], env=env)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert freeze(py) == after

    undo = invoke(["fix", "--rollback", "--python", str(py)])
    assert undo.exit_code == 0, undo.stdout
    assert freeze(py) == planted
    assert not activation.exists()


def _plan(py: Path, *findings: Finding):
    facts = collect(python=str(py), quick=True)
    return build_plan(list(findings), facts), facts


@pytest.fixture(scope="module")
def requests_venv(tmp_path_factory) -> Path:
    """One venv with requests 2.25.1 (idna<3) and pygments 2.12.0; every test rolls it back."""
    py = make_venv(tmp_path_factory.mktemp("rollback") / "venv")
    pip(py, "install", "requests==2.25.1", "pygments==2.12.0")
    return py


@pytest.mark.slow
def test_failing_step_rolls_back_to_the_same_distributions(requests_venv):
    py = requests_venv
    activation = py.parent.parent / "envdoctor-activate.sh"
    activation.write_text("export KEEP_ME='yes'\n")
    before = freeze(py)
    plan, facts = _plan(
        py,
        Finding("drop", Severity.ERROR, "m", actions=[PipUninstall(("pygments",))]),
        Finding("up", Severity.ERROR, "m", actions=[PipInstall(("idna==3.7",), reinstall=True)]),
        Finding("bad", Severity.ERROR, "m", actions=[PipInstall(("envdoctor-no-such-package==0.0.1",))]),
        Finding("env", Severity.WARNING, "m", actions=[SetEnv("KEEP_ME", "no")]),
    )
    errors = count_errors(evaluate(facts))
    result = apply_plan(plan, lambda: evaluate(collect(python=str(py), quick=True)), errors, timeout=300)
    assert not result.ok and result.rolled_back and result.reason.startswith("step failed")
    assert [s.ok for s in result.steps] == [True, True, False]
    assert result.rollback.ok and result.rollback.restored == ["Pygments==2.12.0", "idna==2.10"]
    assert freeze(py) == before
    assert activation.read_text() == "export KEEP_ME='yes'\n"
    assert json.loads(result.snapshot.path.read_text())["distributions"]["requests"] == "2.25.1"
    activation.unlink()


@pytest.mark.slow
def test_worse_recheck_rolls_back(requests_venv):
    py = requests_venv
    before = freeze(py)
    # idna 3.7 breaks requests 2.25.1 (idna<3): the re-check finds a new error.
    plan, facts = _plan(py, Finding("up", Severity.ERROR, "m", actions=[PipInstall(("idna==3.7",))]))
    errors = count_errors(evaluate(facts))
    result = apply_plan(plan, lambda: evaluate(collect(python=str(py), quick=True)), errors, timeout=300)
    assert result.rolled_back and result.errors_after == errors + 1
    assert "re-check found" in render_result(result)
    assert freeze(py) == before


def test_live_refusal_of_an_externally_managed_system_python(tmp_path):
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no system python3")
    target = inspect_target(str(system))
    if target.in_venv or not Path(target.stdlib, "EXTERNALLY-MANAGED").exists():
        pytest.skip("/usr/bin/python3 is not externally managed here")
    refused = live_refusals(target, allow_system=False, allow_conda=False)
    assert len(refused) == 1 and "(PEP 668)" in refused[0] and "--break-system-packages" in refused[0]
    assert live_refusals(target, allow_system=True, allow_conda=False) == []
    plan, _ = _plan(system, Finding("n", Severity.ERROR, "m", actions=[PipInstall(("idna==3.7",))]))
    plan.refusals = []  # the executor must refuse on its own, whatever the plan says
    result = apply_plan(plan, lambda: [], 0, timeout=60)
    assert result.refused and result.snapshot is None and not result.steps


def test_live_refusal_of_a_conda_managed_torch(tmp_path):
    py = make_venv(tmp_path / "env", with_pip=False)
    meta = tmp_path / "env" / "conda-meta"
    meta.mkdir()
    (meta / "pytorch-2.2.2-py3.11_cuda12.1_0.json").write_text(
        json.dumps({"name": "pytorch", "version": "2.2.2"})
    )
    target = inspect_target(str(py))
    assert conda_meta_packages(target.prefix) == {"pytorch": "2.2.2"}
    refused = live_refusals(target, allow_system=False, allow_conda=False)
    assert len(refused) == 1 and "--allow-conda" in refused[0]
    assert live_refusals(target, allow_system=False, allow_conda=True) == []


def test_refused_apply_with_json_prints_one_document_naming_the_refusal(tmp_path):
    py = make_venv(tmp_path / "env", with_pip=False)
    (tmp_path / "env" / "conda-meta").mkdir()
    (tmp_path / "env" / "conda-meta" / "pytorch-2.2.2-0.json").write_text(
        '{"name": "pytorch", "version": "2.2.2"}'
    )
    argv = ["fix", "--apply", "--json", "--quick", "--recipe", "torch213-cpu", "--python", str(py)]
    result = invoke(argv)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["steps"] == [] and doc["smoke"] is None
    assert len(doc["refused"]) == 1 and "--allow-conda" in doc["refused"][0]
    assert doc["plan"]["refusals"] == doc["refused"] and doc["plan"]["commands"]
    assert not (tmp_path / "env" / ".envdoctor").exists()  # refused: not even a lock file written


def test_rollback_of_a_never_fixed_venv_is_a_usage_error_that_writes_nothing(tmp_path):
    py = make_venv(tmp_path / "env", with_pip=False)
    result = invoke(["fix", "--rollback", "--python", str(py)])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"envdoctor: error: no snapshot under {tmp_path / 'env' / '.envdoctor' / 'snapshots'}\n"
    )
    assert not (tmp_path / "env" / ".envdoctor").exists()


def test_fix_in_a_venv_without_torch_shows_the_torch_install_but_does_not_run_it(venv_factory):
    """torch-missing is a warning: its 1-5 GB install is listed, and --apply leaves it alone."""
    py = venv_factory("fix-no-torch")  # without pip: nothing to install with, nothing installed
    shown = invoke(["fix", "--python", str(py)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("Nothing to do.\nNot applied by default (warnings and info;")
    assert "[torch-missing (warning)]" in shown.stdout
    applied = invoke(["fix", "--apply", "--python", str(py)])
    assert applied.exit_code == 0 and "nothing to do" in applied.stdout
    prefix = py.parent.parent
    assert not (prefix / ".envdoctor" / "snapshots").exists()  # no snapshot: nothing ran
    assert not list(prefix.glob("lib/python*/site-packages/torch"))


# --- the uv path: uv from PyPI, installing into a throwaway venv -------------------------------


@pytest.fixture(scope="module")
def uv_path(tmp_path_factory) -> str:
    """A PATH whose first entry holds a real ``uv`` (installed from PyPI into a tools venv)."""
    tools = make_venv(tmp_path_factory.mktemp("uv") / "tools")
    pip(tools, "install", "uv")
    assert (tools.parent / "uv").is_file()
    return f"{tools.parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.slow
def test_fix_apply_with_uv_fixes_rechecks_and_rolls_back(tmp_path, uv_path, monkeypatch):
    py = make_venv(tmp_path / "venv")
    pip(py, "install", "requests==2.25.1")
    pip(py, "install", "idna==3.7")  # above requests' idna<3: requirement-conflict
    planted = freeze(py)
    uv_env = {"PATH": uv_path, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    env = {**uv_env, "PYTORCH_CUDA_ALLOC_CONF": BAD_ALLOC}
    assert {"requirement-conflict", "alloc-conf-invalid"} <= _ids(py, env)

    # 1. apply with uv: idna moves below 3, the allocator setting goes to the activation file.
    result = invoke(["fix", "--apply", "--python", str(py), "--quick"], env=env)
    assert result.exit_code == 0, result.output
    uv = str(Path(uv_path.split(os.pathsep)[0]) / "uv")
    assert f"{uv} pip install --python {py} 'idna<3,>=2.5'" in result.stdout
    assert "Applied. Errors before: 2, after: 0." in result.stdout
    fixed = freeze(py)
    assert "idna==2.10" in fixed and "requests==2.25.1" in fixed
    activation = read_activation(str(tmp_path / "venv"))
    assert activation == {"PYTORCH_CUDA_ALLOC_CONF": None}  # its only entry is invalid: unset
    assert {"requirement-conflict", "alloc-conf-invalid"}.isdisjoint(_ids(py, uv_env))

    # 2. roll back by hand: uv's files renamed back from the stash, no activation file.
    undo = invoke(["fix", "--rollback", "--python", str(py)], env=uv_env)
    assert undo.exit_code == 0, undo.output
    assert "environment restored exactly" in undo.stdout and freeze(py) == planted
    assert not (tmp_path / "venv" / "envdoctor-activate.sh").exists()

    # 3. a step that makes things worse (urllib3 2 breaks requests 2.25.1): uv rolls it back.
    monkeypatch.setenv("PATH", uv_path)
    monkeypatch.setenv("UV_CACHE_DIR", uv_env["UV_CACHE_DIR"])
    plan, facts = _plan(py, Finding("up", Severity.ERROR, "m", actions=[PipInstall(("urllib3==2.2.3",))]))
    errors = count_errors(evaluate(facts))
    worse = apply_plan(plan, lambda: evaluate(collect(python=str(py), quick=True)), errors, timeout=300)
    assert worse.steps[0].ok and worse.steps[0].command.startswith(f"{uv} pip install --python {py}")
    assert worse.rolled_back and worse.errors_after == errors + 1
    assert worse.rollback.ok and worse.rollback.restored == ["urllib3==1.26.20"]
    assert freeze(py) == planted
