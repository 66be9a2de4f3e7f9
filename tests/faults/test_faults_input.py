"""Faults of the input and the output: long, huge or nested input, files that are not what they
claim, closed or full standard streams, and option values that would remove a bound."""

from __future__ import annotations

import json
import resource

import pytest
from fault_helpers import Fault, one_line_error, rows_by_test, run_fault

from envdoctor.explain import load_signatures

# A full CUDA error as torch prints it: over 255 bytes and no '/' (a single path component for stat()).
CUDA_ERROR = (
    "RuntimeError: CUDA error: no kernel image is available for execution on the device "
    "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace "
    "below might be incorrect. For debugging consider passing CUDA_LAUNCH_BLOCKING=1 "
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."
)
FIVE_MB = 5 * 1024 * 1024 - 1024

FAULTS = [
    Fault(
        "test_explain_long_error_message",
        "an error message longer than 255 bytes without a '/'",
        'envdoctor explain "RuntimeError: CUDA error: no kernel image ... device-side assertions."',
        "the text is explained (it is never handed to stat()); arch-not-in-wheel, exit 1",
        1,
        20,
    ),
    Fault(
        "test_explain_five_megabytes",
        "5 MB of adversarial text: one line, 4000-character lines, runs of spaces or tabs, indented lines, repeated near-matches",
        "envdoctor explain --file BIG",
        "matching is linear: each pattern runs only near its literal anchor; under 2 s of CPU",
        0,
        60,
    ),
    Fault(
        "test_explain_one_message_repeated_on_one_line",
        "5 MB of one line holding one known error message 60 000 times",
        "envdoctor explain --file BIG",
        "each line is checked for a crash once, not once per match; under 2 s of CPU; the finding, exit 1",
        1,
        60,
    ),
    Fault(
        "test_check_from_report_five_megabytes",
        "a 5 MB paste in 4000-character lines around every known error message",
        "envdoctor check --from-report BIG",
        "report parsers read the first and last 4000 lines; under 2 s of CPU; error findings, exit 1",
        1,
        60,
    ),
    Fault(
        "test_explain_missing_file",
        "explain names a path that does not exist",
        "envdoctor explain /no/such/file",
        "one line naming the file, exit 2",
        2,
        20,
    ),
    Fault(
        "test_explain_empty_text",
        "explain of an empty string",
        'envdoctor explain ""',
        "one line: the error message is empty, exit 2",
        2,
        20,
    ),
    Fault(
        "test_stdin_closed",
        "stdin closed while a command reads it",
        "envdoctor check --from-report - <&- ; envdoctor explain - <&-",
        "one line: stdin is closed, exit 2",
        2,
        20,
    ),
    Fault(
        "test_stdout_full",
        "stdout is /dev/full",
        "envdoctor check --quick >/dev/full",
        "one line: No space left on device (writing the output), exit 2",
        2,
        20,
    ),
    Fault(
        "test_stdout_closed",
        "stdout closed",
        "envdoctor rules >&-",
        "one line: stdout is closed, exit 2",
        2,
        20,
    ),
    Fault(
        "test_facts_not_envdoctor",
        "check --facts / diff of {}, another tool's JSON, or schema_version -5",
        "envdoctor check --facts F ; envdoctor diff F G",
        "one line naming the file: not an envdoctor facts file / unsupported schema_version, exit 2",
        2,
        20,
    ),
    Fault(
        "test_facts_nested_json",
        "a facts file of JSON nested 200 000 deep",
        "envdoctor check --facts DEEP",
        "one line naming the file: nested too deeply, exit 2",
        2,
        20,
    ),
    Fault(
        "test_recipe_name_too_long",
        "a 10 000-character recipe name",
        "envdoctor recipes show xxxx...",
        "one line: unknown recipe (the name shortened), exit 2",
        2,
        20,
    ),
    Fault(
        "test_timeout_not_finite",
        "--timeout inf / nan / 0",
        "envdoctor smoke-train --timeout inf ; envdoctor fix --timeout nan",
        "a one-line usage error, exit 2",
        2,
        20,
    ),
    Fault(
        "test_probe_timeout_env_not_finite",
        "ENVDOCTOR_PROBE_TIMEOUT=inf (or nan)",
        "ENVDOCTOR_PROBE_TIMEOUT=inf envdoctor check --quick",
        "the value is ignored: probes keep their default bound of 10 s",
        0,
        30,
    ),
]
ROW = rows_by_test(FAULTS)


def _cpu_seconds(before: resource.struct_rusage) -> float:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _adversarial_texts() -> dict[str, str]:
    units = {
        "one-line": "a",
        "long-lines": "b" * 3999 + "\n",
        "space-runs": "key: a" + " " * 3990 + "b\n",
        "table-cells": "| a" + " " * 3990 + "b |\n",
        "tabs": "a\t" * 1995 + "\n",
        "so-names": "x.so",
        "requires": "p 1 requires ",
        "prose-versions": "torch 2.1.0 Python 3.11 driver 535 RTX 3090 numpy 1.26 " * 18 + "\n",
        # a leading run that two optional parts of a pattern could split between them (quadratic)
        "indented": " " * 500 + "torch 2.1.0 CUDA 12.1\n",
        "indented-rule": " " * 500 + "torch 2.1.0 " + "-" * 500 + "\n",
    }
    return {name: (unit * (FIVE_MB // len(unit) + 1))[:FIVE_MB] for name, unit in units.items()}


def test_explain_long_error_message() -> None:
    assert len(CUDA_ERROR.encode()) > 255 and "/" not in CUDA_ERROR
    ran = run_fault(ROW["test_explain_long_error_message"], ["explain", CUDA_ERROR])
    assert ran.stdout.startswith("1. arch-not-in-wheel"), ran.stdout


@pytest.mark.slow
def test_explain_five_megabytes(tmp_path) -> None:
    for name, text in _adversarial_texts().items():
        big = tmp_path / f"{name}.txt"
        big.write_text(text)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run_fault(ROW["test_explain_five_megabytes"], ["explain", "--file", big])
        assert _cpu_seconds(before) < 2.0, name


@pytest.mark.slow
def test_explain_one_message_repeated_on_one_line(tmp_path) -> None:
    unit = "DLL load failed while importing x_cuda: The specified procedure could not be found. "
    big = tmp_path / "one-line.txt"
    big.write_text((unit * (FIVE_MB // len(unit) + 1))[:FIVE_MB])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ran = run_fault(ROW["test_explain_one_message_repeated_on_one_line"], ["explain", "--file", big])
    assert _cpu_seconds(before) < 2.0
    assert ran.stdout.startswith("1. ext-abi-mismatch"), ran.stdout


@pytest.mark.slow
def test_check_from_report_five_megabytes(tmp_path) -> None:
    examples = "\n".join(s.example for s in load_signatures())
    filler = ("c" * 3999 + "\n") * 200
    unit = f"{filler}{examples}\n"
    big = tmp_path / "paste.txt"
    big.write_text((unit * (FIVE_MB // len(unit) + 1))[:FIVE_MB])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ran = run_fault(ROW["test_check_from_report_five_megabytes"], ["check", "--from-report", big])
    assert _cpu_seconds(before) < 2.0
    assert "arch-not-in-wheel" in ran.stdout


def test_explain_missing_file() -> None:
    ran = run_fault(ROW["test_explain_missing_file"], ["explain", "/no/such/file"])
    one_line_error(ran, "/no/such/file", "no such file")


def test_explain_empty_text() -> None:
    ran = run_fault(ROW["test_explain_empty_text"], ["explain", ""])
    one_line_error(ran, "empty")


@pytest.mark.parametrize("args", [["check", "--from-report", "-"], ["explain", "-"]], ids=str)
def test_stdin_closed(args) -> None:
    ran = run_fault(ROW["test_stdin_closed"], args, redirect="<&-")
    one_line_error(ran, "stdin: closed")


def test_stdout_full() -> None:
    ran = run_fault(ROW["test_stdout_full"], ["check", "--quick"], redirect=">/dev/full")
    one_line_error(ran, "No space left on device")


def test_stdout_closed() -> None:
    ran = run_fault(ROW["test_stdout_closed"], ["rules"], redirect=">&-")
    one_line_error(ran, "stdout is closed")


@pytest.mark.parametrize(
    "content",
    ["{}", '{"name": "left-pad", "version": "1.3.0"}', '{"schema_version": -5}', '{"schema_version": 1}'],
    ids=["empty", "package-json", "negative-version", "no-sections"],
)
def test_facts_not_envdoctor(tmp_path, content) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(content)
    good = tmp_path / "good.json"
    good.write_text(
        run_fault(ROW["test_probe_timeout_env_not_finite"], ["check", "--quick", "--json"]).stdout
    )
    for args in (["check", "--facts", bad], ["diff", good, bad], ["diff", bad, good]):
        ran = run_fault(ROW["test_facts_not_envdoctor"], args)
        one_line_error(ran, str(bad))


def test_facts_nested_json(tmp_path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    for args in (["check", "--facts", deep], ["diff", deep, deep]):
        ran = run_fault(ROW["test_facts_nested_json"], args)
        one_line_error(ran, str(deep), "nested too deeply")


def test_recipe_name_too_long() -> None:
    for args in (
        ["recipes", "show", "x" * 10_000],
        ["build", "--print-dockerfile", "--recipe", "x" * 10_000],
    ):
        ran = run_fault(ROW["test_recipe_name_too_long"], args)
        assert len(one_line_error(ran, "unknown recipe")) < 300


@pytest.mark.parametrize(
    "args",
    [["smoke-train", "--timeout", "inf"], ["smoke-train", "--timeout", "nan"], ["fix", "--timeout", "0"]],
    ids=str,
)
def test_timeout_not_finite(args) -> None:
    ran = run_fault(ROW["test_timeout_not_finite"], args)
    assert "give a positive number of seconds" in ran.stderr.splitlines()[-1]


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_probe_timeout_env_not_finite(value) -> None:
    ran = run_fault(
        ROW["test_probe_timeout_env_not_finite"],
        ["check", "--quick", "--json"],
        env={"ENVDOCTOR_PROBE_TIMEOUT": value},
    )
    assert json.loads(ran.stdout)["facts"]["python"]["version"]


def test_every_signature_has_an_anchor_its_example_holds() -> None:
    """No signature falls back to a scan of the whole text, and each anchor is really in its message."""
    for sig in load_signatures():
        assert sig.anchors, f"{sig.name}: no literal anchor of 4+ characters in its pattern"
        example = " ".join(sig.example.split()).lower()
        assert any(a in example for a in sig.anchors), (sig.name, sig.anchors)
