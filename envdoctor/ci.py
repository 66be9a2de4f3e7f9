"""``envdoctor ci init``: a CI workflow (GitHub Actions or GitLab CI) that checks the environment on every push.

The check job installs the project as CI installs it, runs ``envdoctor check --json``, renders the
same facts as HTML (and markdown into the GitHub job summary), uploads both as artifacts whatever
happened, and fails when a finding is an error (``check`` exits 1) or the check could not run (2).
With a GPU runner label a second job does the same on that runner and adds ``smoke-train``, whose
checkpoints' loss plot is uploaded too. Workflows are built as data and dumped as YAML, so a
project's own values (labels, commands) are quoted by the dumper, never spliced into YAML text.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.errors import EnvdoctorError

DEFAULT_INSTALL = (
    "if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; "
    "elif [ -f pyproject.toml ] || [ -f setup.py ]; then python -m pip install -e .; fi"
)
PATHS = {"github": Path(".github/workflows/envdoctor.yml"), "gitlab": Path(".gitlab-ci.yml")}
CHECK_FILES = ("envdoctor-check.json", "envdoctor-check.html")
SMOKE_FILES = ("envdoctor-smoke.json", "envdoctor-smoke/loss.svg")
# Runner labels GitHub defines (actionlint knows them); any other label is the self-hosted runner's own.
BUILTIN_LABELS = frozenset({"self-hosted", "linux", "macos", "windows", "x64", "arm", "arm64"})


class CIError(EnvdoctorError, ValueError):
    """A workflow that cannot be written (the file exists, a bad label): one line for the user."""


@dataclass(frozen=True)
class Options:
    python: str = "3.11"
    install: str = DEFAULT_INSTALL  # how the project installs its environment
    envdoctor: str = "envdoctor"  # the pip requirement of envdoctor itself
    gpu_runner: tuple[str, ...] = ()  # runner labels (GitHub) / tags (GitLab) of a GPU machine


def check_script(prefix: str = "envdoctor-check", summary: bool = False) -> str:
    """Shell lines: check, keep its exit status, render HTML (and a job summary) from the same facts."""
    lines = [
        "status=0",
        f"envdoctor check --json > {prefix}.json || status=$?",
        f"envdoctor check --facts {prefix}.json --format html > {prefix}.html || true",
    ]
    if summary:
        lines.append(
            f'envdoctor check --facts {prefix}.json --format markdown >> "$GITHUB_STEP_SUMMARY" || true'
        )
    return "\n".join(lines)


def _setup(opts: Options, venv: bool) -> str:
    """Install envdoctor and the project: in a venv on a self-hosted runner (its Python stays clean)."""
    lines = ["python3 -m venv .venv", ". .venv/bin/activate"] if venv else []
    lines += [
        "python -m pip install --upgrade pip",
        f"python -m pip install {shlex.quote(opts.envdoctor)}",
        opts.install,
    ]
    return "\n".join(lines)


def github(opts: Options) -> dict[str, Any]:
    """The GitHub Actions workflow as data."""
    upload = {"name": "Upload the report", "if": "always()", "uses": "actions/upload-artifact@v4"}
    fail = "Fail on error findings"
    check_job = {
        "runs-on": "ubuntu-latest",
        "timeout-minutes": 20,
        "steps": [
            {"uses": "actions/checkout@v4"},
            {"uses": "actions/setup-python@v5", "with": {"python-version": opts.python}},
            {"name": "Install envdoctor and the project", "run": _setup(opts, venv=False)},
            {
                "name": "envdoctor check",
                "id": "check",
                "run": check_script(summary=True) + '\necho "status=$status" >> "$GITHUB_OUTPUT"',
            },
            upload | {"with": {"name": "envdoctor-check", "path": "\n".join(CHECK_FILES)}},
            {
                "name": fail,
                "if": "steps.check.outputs.status != '0'",
                "run": 'echo "::error::envdoctor check exited ${{ steps.check.outputs.status }}: '
                'see the envdoctor-check artifact"\nexit 1',
            },
        ],
    }
    jobs: dict[str, Any] = {"check": check_job}
    if opts.gpu_runner:
        gpu_files = ("envdoctor-gpu-check.json", "envdoctor-gpu-check.html", *SMOKE_FILES)
        smoke = (
            check_script("envdoctor-gpu-check")
            + "\nenvdoctor smoke-train --json --out envdoctor-smoke > envdoctor-smoke.json"
            + " || status=$?"
            + '\necho "status=$status" >> "$GITHUB_OUTPUT"'
        )
        jobs["gpu"] = {
            "runs-on": list(opts.gpu_runner) if len(opts.gpu_runner) > 1 else opts.gpu_runner[0],
            "timeout-minutes": 60,
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"name": "Install envdoctor and the project", "run": _setup(opts, venv=True)},
                {
                    "name": "envdoctor check and smoke-train",
                    "id": "check",
                    "run": ". .venv/bin/activate\n" + smoke,
                },
                upload | {"with": {"name": "envdoctor-gpu", "path": "\n".join(gpu_files)}},
                {
                    "name": fail,
                    "if": "steps.check.outputs.status != '0'",
                    "run": 'echo "::error::envdoctor on the GPU runner exited ${{ steps.check.outputs.status }}"'
                    "\nexit 1",
                },
            ],
        }
    return {
        "name": "envdoctor",
        "on": {"push": None, "pull_request": None, "workflow_dispatch": None},
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }


def gitlab(opts: Options) -> dict[str, Any]:
    """The GitLab CI pipeline as data: one script per job, so ``status`` carries to the last line."""
    artifacts = {"when": "always", "expire_in": "30 days"}
    doc: dict[str, Any] = {
        "stages": ["check"] + (["gpu"] if opts.gpu_runner else []),
        "envdoctor-check": {
            "stage": "check",
            "image": f"python:{opts.python}",
            "script": [_setup(opts, venv=False), check_script(), "exit $status"],
            "artifacts": artifacts | {"paths": list(CHECK_FILES)},
        },
    }
    if opts.gpu_runner:
        doc["envdoctor-gpu"] = {
            "stage": "gpu",
            "tags": list(opts.gpu_runner),
            "script": [
                _setup(opts, venv=True),
                check_script("envdoctor-gpu-check"),
                "envdoctor smoke-train --json --out envdoctor-smoke > envdoctor-smoke.json || status=$?",
                "exit $status",
            ],
            "artifacts": artifacts
            | {"paths": ["envdoctor-gpu-check.json", "envdoctor-gpu-check.html", *SMOKE_FILES]},
        }
    return doc


def render(kind: str, opts: Options) -> str:
    """The workflow as YAML text, multi-line scripts as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    def null(dumper: yaml.SafeDumper, _value: None) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:null", "")

    Dumper.add_representer(str, text)
    Dumper.add_representer(type(None), null)
    data = github(opts) if kind == "github" else gitlab(opts)
    header = f"# Written by `envdoctor ci init --{kind}`: checks the environment CI builds, on every push.\n"
    return header + yaml.dump(data, Dumper=Dumper, sort_keys=False, width=1000)


def custom_labels(labels: tuple[str, ...]) -> list[str]:
    """The labels actionlint does not know: a self-hosted runner's own, declared in actionlint.yaml."""
    return [label for label in labels if label.lower() not in BUILTIN_LABELS]


def write(
    kind: str, opts: Options, root: Path, output: Path | None = None, force: bool = False
) -> list[Path]:
    """Write the workflow under ``root`` (or to ``output``); an existing file only with ``force``.

    A GitHub workflow with custom runner labels also gets ``.github/actionlint.yaml`` declaring them
    (when there is none), so that actionlint, which the project may already run, accepts the labels.
    """
    path = output if output is not None else root / PATHS[kind]
    if path.exists() and not force:
        raise CIError(f"{path} exists: pass --force to replace it, or --output to write elsewhere")
    written = [(path, render(kind, opts))]
    labels = custom_labels(opts.gpu_runner)
    config = root / ".github" / "actionlint.yaml"
    if kind == "github" and output is None and labels and not config.exists():
        written.append((config, "self-hosted-runner:\n  labels:\n" + "".join(f"    - {x}\n" for x in labels)))
    try:
        for target, text in written:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CIError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    return [target for target, _ in written]


def parse_labels(text: str) -> tuple[str, ...]:
    """``"self-hosted,gpu"`` -> ("self-hosted", "gpu"); labels are single words of a safe alphabet."""
    labels = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in labels if not all(c.isalnum() or c in "-_.:/" for c in t)]
    if not labels or bad:
        raise CIError(
            f"--gpu-runner {text!r}: give comma-separated runner labels (letters, digits, - _ . : /)"
        )
    return labels
