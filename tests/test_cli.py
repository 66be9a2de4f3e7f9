"""The command tree itself: usage errors exit 2 with one error line, help exits 0."""

from __future__ import annotations

import pytest
from cli_helpers import invoke

from envdoctor import __version__

COMMANDS = ["check", "rules", "recipes", "recommend", "fix", "build", "explain", "diff", "smoke-train"]


def test_no_command_prints_the_command_list_and_exits_2() -> None:
    result = invoke([])
    assert result.exit_code == 2
    assert all(name in result.stdout for name in COMMANDS)


def test_version() -> None:
    result = invoke(["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"envdoctor {__version__}")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_builds_and_prints_its_help(command: str) -> None:
    result = invoke([command, "--help"])
    assert result.exit_code == 0
    assert f"usage: envdoctor {command}" in result.stdout
    assert len(result.stdout.splitlines()) > 3


@pytest.mark.parametrize(
    "args",
    [["check", "--bogus"], ["check", "--format", "yaml"], ["diff", "only-one.json"], ["nonsense"]],
)
def test_usage_errors_exit_2_with_one_error_line(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
