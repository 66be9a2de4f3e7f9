"""One --format option everywhere (--json is its short form), and rules listed whole at any width."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke

from envdoctor.rules import all_rules

FACTS = Path(__file__).parent / "fixtures" / "facts"
H200 = str(FACTS / "healthy_h200.json")


@pytest.mark.parametrize("columns", ["80", "40"])
def test_rules_piped_or_narrow_lists_every_id_whole(columns):
    result = invoke(["rules"], env={"COLUMNS": columns})
    assert result.exit_code == 0
    starts = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert starts == {r.id for r in all_rules()}


def test_rules_json_and_markdown_through_format():
    rows = json.loads(invoke(["rules", "--json"]).stdout)
    assert {r["id"] for r in rows} == {r.id for r in all_rules()}
    assert all(r["sources"] and r["severity"] in ("error", "warning", "info") for r in rows)
    assert invoke(["rules", "--format", "json"]).stdout == invoke(["rules", "--json"]).stdout
    assert invoke(["rules", "--format", "markdown"]).stdout == invoke(["rules", "--markdown"]).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--facts", H200],
        ["recommend", "--facts", H200],
        ["recipes"],
        ["explain", "RuntimeError: No CUDA GPUs are available"],
        ["diff", H200, H200],
        ["fix", "--facts", H200],
    ],
    ids=lambda a: a[0],
)
def test_every_json_command_takes_format_json_and_both_spellings_agree(args):
    short, long = invoke([*args, "--json"]), invoke([*args, "--format", "json"])
    assert short.exit_code == long.exit_code and short.stdout == long.stdout
    json.loads(long.stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--facts", H200, "--json", "--format", "markdown"],
        ["rules", "--json", "--format", "text"],
        ["rules", "--markdown", "--format", "json"],
        ["recipes", "--json", "--format", "text"],
    ],
)
def test_contradicting_format_options_are_a_usage_error_not_silently_json(args):
    result = invoke(args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "contradict" in result.stderr
