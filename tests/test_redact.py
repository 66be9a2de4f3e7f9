"""Output safe to share and safe to print: a report, a facts file and an error message with a planted
home folder, user, host name, credentials and terminal escape sequences go through every output format
of `check` and `explain`; none of the planted values may come out."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from unittest import mock

import pytest
from cli_helpers import invoke

from envdoctor.facts import Facts, Gpu
from envdoctor.redact import Redactor, redact_credentials, strip_controls

USER, HOST = "alice-ml", "gpu-node-17"
FQDN = f"{HOST}.lab.example.org"
SECRETS = [
    "s3cr3tpass",
    "abcdef123456",
    "hf_" + "A1b2C3d4" * 5,
    "ghp_" + "Z9y8X7w6" * 5,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl",
    "AKIAIOSFODNN7EXAMPLE",
]
ESCAPES = ["\x1b", "\x07", "\x9b"]
REPORT = (
    f"(venv) {USER}@{HOST}:~/proj$ python -m torch.utils.collect_env\n"
    "PyTorch version: 2.1.0+cu121\n"
    "CUDA used to build PyTorch: 12.1\n"
    "Is CUDA available: False\n"
    "GPU models and configuration: GPU 0: NVIDIA GeForce RTX 4090\x1b]0;owned\x07\x1b[2J\x9b1m\n"
    "Nvidia driver version: 470.82.01\n"
    f"CUDA_HOME=/home/{USER}/cuda-12.1\n"
    f"LD_LIBRARY_PATH=/home/{USER}/.local/lib:https://bob:{SECRETS[0]}@mirror.example.com/lib\n"
    f"RuntimeError: download failed on {HOST}: https://hub.example.com/m?token={SECRETS[1]} at /home/{USER}/proj/train.py\n"
    f"OSError: Authorization: Bearer {SECRETS[4]} rejected; HF_TOKEN={SECRETS[2]} {SECRETS[3]} {SECRETS[5]}\n"
)


def _leaks(output: str, keep_hosts: bool = False) -> list[str]:
    """The planted values found in ``output`` (JSON is decoded first: "\\u001b" is an escape too)."""
    with contextlib.suppress(ValueError):
        output = json.dumps(json.loads(output), ensure_ascii=False)
    planted = [USER, *SECRETS, *ESCAPES] + ([] if keep_hosts else [HOST])
    return [p for p in planted if p in output]


@pytest.fixture
def machine(tmp_path: Path):
    """This process as seen by envdoctor: home /home/alice-ml, user alice-ml, host gpu-node-17."""
    env = {"HOME": f"/home/{USER}", "USER": USER, "LOGNAME": USER}
    with mock.patch("socket.gethostname", return_value=FQDN):
        yield env


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.txt"
    path.write_text(REPORT)
    return path


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_check_from_report_redacts_every_format(machine, report: Path, fmt: str) -> None:
    result = invoke(["check", "--from-report", str(report), "--format", fmt, "-v"], env=machine)
    assert result.exit_code == 1, result.output  # the paste still diagnoses: driver 470 and an RTX 4090
    assert "gpu-newer-than-driver" in result.stdout
    assert _leaks(result.output) == []
    assert "~/proj/train.py" in result.stdout and "token=***" in result.stdout
    if fmt == "json":
        payload = json.loads(result.stdout)
        assert payload["facts"]["nvidia"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"
        assert payload["facts"]["system"]["env"]["CUDA_HOME"] == "~/cuda-12.1"


def test_check_keeps_host_names_on_request_but_never_the_user(machine, report: Path) -> None:
    result = invoke(["check", "--from-report", str(report), "--json", "--keep-hostnames"], env=machine)
    assert _leaks(result.output, keep_hosts=True) == []
    assert HOST in result.stdout


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_check_facts_file_with_escapes_and_secrets_is_clean(machine, tmp_path: Path, fmt: str) -> None:
    facts = Facts(origin="file")
    facts.nvidia.driver_version = "470.82.01"
    facts.nvidia.gpus = [Gpu(0, "NVIDIA GeForce RTX 4090\x1b]0;owned\x07", "8.9")]
    facts.python.executable = f"/home/{USER}/venv/bin/python"
    facts.cuda.path_nvcc = f"/home/{USER}/cuda/bin/nvcc"
    facts.error_lines = [f"RuntimeError: password={SECRETS[0]} on {HOST}"]
    path = tmp_path / "facts.json"
    path.write_text(facts.to_json())
    result = invoke(["check", "--facts", str(path), "--format", fmt, "-v"], env=machine)
    assert result.exit_code == 1 and _leaks(result.output) == []
    assert "~/venv/bin/python" in result.stdout


@pytest.mark.parametrize("as_json", [False, True])
def test_explain_redacts_the_echoed_error(machine, as_json: bool) -> None:
    error = (
        "RuntimeError: Ninja is required to load C++ extensions\n"
        f"  File /home/{USER}/proj/ext.py, line 3 token={SECRETS[1]} \x1b]8;;http://x\x07link"
    )
    result = invoke(["explain", error, *(["--json"] if as_json else [])], env=machine)
    assert "build-tools-missing" in result.stdout
    assert _leaks(result.output) == []


def test_redactor_units() -> None:
    r = Redactor(home=f"/home/{USER}", users={USER, "root"}, hosts={HOST, "localhost"})
    assert r.text(f"/home/{USER}/x and /home/{USER}") == "~/x and ~"
    assert r.text(f"{USER} ran on {HOST} as root on localhost") == "<user> ran on <host> as root on localhost"
    assert r.text(f"/home/{USER}-old/x") == "~/x"  # another home folder is a home folder too
    assert r.text("C:\\Users\\Bob\\venv") == "~\\venv"
    shared = Redactor.for_this_machine(sample="/home/data/models and /home/carol/x")
    assert shared.text("load data from /home/data/x for carol") == "load data from /home/data/x for <user>"
    assert r.data({f"/home/{USER}": [f"{HOST}:1", 3]}) == {"~": ["<host>:1", 3]}
    kept = Redactor(home=None, users={USER}, hosts={HOST}, keep_hosts=True)
    assert kept.text(f"{USER}@{HOST}") == f"<user>@{HOST}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token=abc123", "token=***"),
        ('{"api_key": "sk-abcdefghijklmnopqrstuv"}', '{"api_key": "***"}'),
        ("max_new_tokens=512 use_auth_token=True", "max_new_tokens=512 use_auth_token=True"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("git clone https://user:pw@github.com/x", "git clone https://***@github.com/x"),
        ("PASSWORD: hunter22", "PASSWORD: ***"),
        ("token embeddings", "token embeddings"),
    ],
)
def test_credentials(text: str, expected: str) -> None:
    assert redact_credentials(text) == expected


def test_controls_are_stripped_but_newlines_and_tabs_stay() -> None:
    text = "a\x1b[31mb\x1b[0m\tc\n\x1b]0;title\x07d\x1b]8;;u\x1b\\e\x9b1mf\x9d0;t\x9cg\u202eh\ri"
    assert strip_controls(text) == "ab\tc\ndefghi"


@pytest.mark.parametrize(
    "blob",
    ["a" * 5_000_000, "key=" * 1_250_000, "token=" * 800_000, "\x1b]" * 2_500_000, "/home/" * 800_000,
     "https://a@" * 500_000, "Bearer " * 700_000],
    ids=["plain", "keys", "secrets", "osc", "homes", "urls", "bearer"],
)  # fmt: skip
def test_redaction_is_linear_on_five_megabytes(blob: str) -> None:
    r = Redactor(home="/home/x1", users={"alice"}, hosts={"node-1"})
    started = time.process_time()  # CPU time: other processes on a busy machine do not count
    r.text(blob)
    assert time.process_time() - started < 2.0  # 0.1-0.6 s here


@pytest.mark.parametrize("as_json", [False, True])
def test_diff_of_untrusted_facts_files_is_clean(machine, tmp_path: Path, as_json: bool) -> None:
    files = []
    for i, name in enumerate(["NVIDIA H100 80GB HBM3", "NVIDIA H100\x1b]0;owned\x07 80GB HBM3"]):
        facts = Facts(origin="file")
        facts.nvidia.driver_version = "550.54.15"
        facts.nvidia.gpus = [Gpu(0, name, "9.0")]
        facts.python.executable = f"/home/{USER}/venv{i}/bin/python"
        files.append(tmp_path / f"node{i}.json")
        files[-1].write_text(facts.to_json())
    result = invoke(["diff", *map(str, files), *(["--json"] if as_json else [])], env=machine)
    assert "H100" in result.stdout and _leaks(result.stdout) == []
