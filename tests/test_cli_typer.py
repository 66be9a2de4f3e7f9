"""What the typer CLI adds: shell completion, choices and defaults in help, one error base."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.cli import options
from envdoctor.errors import EnvdoctorError

ROOT = Path(__file__).resolve().parents[1]


def _complete(words: str, tmp_path: Path) -> list[str]:
    """What bash completion offers for the last word of ``words`` (the protocol typer's script speaks)."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        _ENVDOCTOR_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    )
    done = subprocess.run(
        [sys.executable, "-m", "envdoctor"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_offers_recipe_names(tmp_path) -> None:
    from envdoctor.recipes import all_recipes

    names = sorted(r.name for r in all_recipes() if r.name.startswith("torch"))
    assert names and sorted(_complete("envdoctor recipes show torch", tmp_path)) == names
    assert sorted(_complete("envdoctor build --recipe torch", tmp_path)) == names
    assert sorted(_complete("envdoctor fix --recipe torch", tmp_path)) == names


def test_completion_offers_finding_ids_after_a_comma(tmp_path) -> None:
    from envdoctor.rules import all_rules

    torch_ids = sorted(r.id for r in all_rules() if r.id.startswith("torch-"))
    offered = _complete("envdoctor fix --only nccl-missing,torch-", tmp_path)
    assert torch_ids and sorted(offered) == [f"nccl-missing,{i}" for i in torch_ids]


def test_completion_offers_choices(tmp_path) -> None:
    assert _complete("envdoctor smoke-train --strategy ", tmp_path) == ["ddp", "fsdp", "deepspeed"]


def test_install_completion_writes_the_script_for_the_shell(tmp_path) -> None:
    # Without a shell among its ancestors (a test runner started by a service), typer's shell
    # detection finds none; typer's own switch makes the option take the shell's name instead.
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        HOME=str(tmp_path),
        SHELL="/bin/bash",
        _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "envdoctor", "--install-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    script = (tmp_path / ".bash_completions" / "envdoctor.sh").read_text()
    assert "_ENVDOCTOR_COMPLETE=complete_bash" in script
    assert ".bash_completions/envdoctor.sh" in (tmp_path / ".bashrc").read_text()


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["smoke-train"], ["--task [local|recall|assoc|add]", "[default: local]"]),
        (["smoke-train"], ["--size [tiny|small|base]", "[default: tiny]"]),
        (["smoke-train"], ["--precision [fp32|bf16|fp16|fp8|all]", "[default: fp32]"]),
        (["smoke-train"], ["--strategy [ddp|fsdp|deepspeed]", "[default: ddp]"]),
        (["smoke-train"], ["--attention [pam|full]", "[default: pam]"]),
        (["build"], ["--network [host|none]", "[default: host]"]),
        (["fit"], ["--precision [fp32|bf16|fp8]", "[default: bf16]"]),
        (["check"], ["--format [text|markdown|json|html]", "--precision [fp32|bf16|fp16|fp8|all]"]),
        (["diff"], ["--format [text|json|html]"]),
        (["fleet", "smoke"], ["--format [text|json]", "[default: 29500]"]),
    ],
)
def test_help_shows_choices_and_defaults(command: list[str], shown: list[str]) -> None:
    result = invoke([*command, "--help"])
    text = " ".join(result.stdout.split())  # help wraps long lines
    assert result.exit_code == 0 and all(s in text for s in shown), result.stdout


def test_choices_shown_are_the_values_the_modules_accept() -> None:
    from envdoctor import fit
    from envdoctor.smoke import config

    assert set(options.TASKS.choices) == set(config.TASKS)
    assert set(options.SIZES.choices) == set(config.SIZES)
    assert set(options.SMOKE_PRECISIONS.choices) == {*config.PRECISIONS, "all"}
    assert set(options.STRATEGIES.choices) == set(config.STRATEGIES)
    assert set(options.ATTENTIONS.choices) == set(config.ATTENTIONS)
    assert set(options.FIT_PRECISIONS.choices) == set(fit.PRECISIONS)


def test_the_errors_commands_raise_share_one_base_with_exit_2() -> None:
    from envdoctor.ci import CIError
    from envdoctor.facts import FactsError
    from envdoctor.fit import FitError
    from envdoctor.fix.state import ApplyError
    from envdoctor.fleet.report import FleetInputError
    from envdoctor.fleet.slurm import SlurmError
    from envdoctor.image.context import ContextError
    from envdoctor.image.engine import EngineError
    from envdoctor.paste import ReportError
    from envdoctor.probes import ProbeTargetError
    from envdoctor.recipes import RecipeError
    from envdoctor.smoke import ConfigError

    classes = [
        ContextError, EngineError, CIError, FactsError, FitError, FleetInputError, SlurmError,
        ProbeTargetError, RecipeError, ReportError, ConfigError, ApplyError,
    ]  # fmt: skip
    assert all(issubclass(c, EnvdoctorError) and c("x").exit_code == 2 for c in classes)


def test_main_ends_with_the_exit_code_an_error_carries(monkeypatch) -> None:
    from envdoctor import recipes

    def broken() -> list:
        raise recipes.RecipeError("recipes/x.yaml: row 3: field 'python' missing", exit_code=3)

    monkeypatch.setattr(recipes, "all_recipes", broken)
    result = invoke(["recipes"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == "envdoctor: error: recipes/x.yaml: row 3: field 'python' missing\n"
