"""`envdoctor mcp`: the real server process, driven by the official SDK's own client over stdio.

Each session spawns ``python -m envdoctor mcp``, initializes (the handshake), lists the tools and
calls every one of them. Secrets planted in the environment and in pasted text must not come back.
``--allow-apply`` adds fix_apply / fix_rollback, which change a real throwaway venv and undo it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from envdoctor.facts import load_facts
from envdoctor.redact import MASK, redact
from tests.fix_helpers import make_venv

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "tests" / "fixtures" / "facts"
REPORT = ROOT / "tests" / "reports_fixtures" / "collect_env_rtx5090_cu121.txt"
HF = "hf_" + "Q" * 30
GH = "ghp_" + "Z" * 36
PASSWORD = "s3cr3t-pass"
BAD_ALLOC = "garbage_collection_threshold:1.5"

needs_sdk = pytest.mark.skipif(importlib.util.find_spec("mcp") is None, reason="pip install 'envdoctor[mcp]'")


def _session(server_args: list[str], env: dict[str, str], script):
    """Run ``script(client)`` against a fresh ``envdoctor mcp`` process; return what it returns."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "envdoctor", "mcp", *server_args], env=env, cwd=str(ROOT)
    )

    async def main():
        async with Client(params, mode="legacy", read_timeout_seconds=300) as client:  # initialize handshake
            return await script(client)

    return asyncio.run(main())


async def _call(client, name: str, arguments: dict) -> tuple[bool, object, str]:
    result = await client.call_tool(name, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return result.is_error, result.structured_content, text


@needs_sdk
@pytest.mark.slow
def test_read_only_server_initializes_lists_and_answers_every_tool() -> None:
    leaky_report = (
        REPORT.read_text()
        + f"\nHF_TOKEN={HF}\nGITHUB_TOKEN: {GH}\n"
        + f"Looking in indexes: https://ci:{PASSWORD}@pypi.example.com/simple\n"
        + "RuntimeError: CUDA error: no kernel image is available for execution on the device\n"
    )

    async def script(client):
        out = {"info": client.server_info, "tools": (await client.list_tools()).tools}
        out["check"] = await _call(client, "check", {"quick": True})
        out["check_python"] = await _call(client, "check", {"quick": True, "python": sys.executable})
        out["explain"] = await _call(
            client,
            "explain",
            {"text": f"CUDA error: no kernel image is available for execution on the device token={HF}"},
        )
        out["diagnose"] = await _call(client, "diagnose_report", {"text": leaky_report})
        out["recommend"] = await _call(client, "recommend", {})
        out["plan"] = await _call(client, "fix_plan", {})
        out["rules"] = await _call(client, "rules", {})
        files = [str(FACTS / "healthy_h200.json"), str(FACTS / "rtx4090_torch211_cu128.json")]
        out["diff"] = await _call(client, "diff", {"reference": files[0], "others": files[1:]})
        inline = (FACTS / "healthy_h200.json").read_text()
        out["diff_inline"] = await _call(client, "diff", {"reference": files[0], "others": [inline]})
        out["diff_bad"] = await _call(client, "diff", {"reference": "/nonexistent.json", "others": files[1:]})
        out["apply"] = await _call(client, "fix_apply", {"python": sys.executable})
        fit = {"model": "13B", "zero": 3, "gpus": 8, "seq_len": 4096, "gpu": "A100 40GB"}
        out["fit"] = await _call(client, "fit", fit)
        out["fit_bad"] = await _call(client, "fit", {"model": "13X"})
        return out

    # NCCL_* variables are reported (allow-listed by prefix): a token in one must still be masked.
    env = {"NCCL_DEBUG_FILE": f"/tmp/nccl.%h?auth={HF}", "PYTORCH_CUDA_ALLOC_CONF": BAD_ALLOC}
    out = _session([], env, script)
    assert out["info"].name == "envdoctor"
    names = {t.name for t in out["tools"]}
    assert names == {"check", "explain", "diagnose_report", "recommend", "fix_plan", "rules", "diff", "fit"}
    assert all(t.annotations.read_only_hint for t in out["tools"])
    assert all(t.description for t in out["tools"])

    error, check, _ = out["check"]
    assert not error and check["facts"]["origin"] == "probe" and check["has_errors"] is True
    assert "alloc-conf-invalid" in {f["id"] for f in check["findings"]}
    assert check["facts"]["system"]["env"]["NCCL_DEBUG_FILE"] == f"/tmp/nccl.%h?auth={MASK}"

    error, other, _ = out["check_python"]
    assert not error and other["facts"]["python"]["executable"] == sys.executable

    error, explained, _ = out["explain"]
    assert not error and explained["candidates"][0]["id"] == "arch-not-in-wheel"
    error, diagnosed, _ = out["diagnose"]
    assert not error and diagnosed["facts"]["origin"] == "report"
    assert "arch-not-in-wheel" in {f["id"] for f in diagnosed["findings"]}

    error, recommended, _ = out["recommend"]
    assert not error and "recipes" in recommended
    error, plan, _ = out["plan"]
    assert not error and any(s["action"]["kind"] == "set-env" for s in plan["steps"])
    error, listed, _ = out["rules"]
    assert not error and {"alloc-conf-invalid", "arch-not-in-wheel"} <= {r["id"] for r in listed["result"]}
    for key in ("diff", "diff_inline"):
        error, differences, _ = out[key]
        assert not error and differences["breaking"] is (key == "diff")
    error, _, message = out["diff_bad"]
    assert error and "/nonexistent.json" in message
    error, fitted, _ = out["fit"]
    assert not error and fitted["verdict"] == "does-not-fit"
    assert "turn on activation checkpointing" in fitted["smallest_change"]["changes"]
    error, _, message = out["fit_bad"]
    assert error and "not a parameter count" in message
    error, _, message = out["apply"]
    assert error and "fix_apply" in message  # not offered without --allow-apply

    everything = json.dumps([v for k, v in out.items() if k not in ("info", "tools")], default=str)
    for secret in (HF, GH, PASSWORD):
        assert secret not in everything


@needs_sdk
@pytest.mark.slow
def test_allow_apply_fixes_a_real_venv_with_a_snapshot_and_rolls_back(tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv", system_site=True)
    activation = tmp_path / "venv" / "envdoctor-activate.sh"

    async def script(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        applied = await _call(client, "fix_apply", {"python": str(py), "only": ["alloc-conf-invalid"]})
        written = activation.is_file() and "unset PYTORCH_CUDA_ALLOC_CONF" in activation.read_text()
        rolled = await _call(client, "fix_rollback", {"python": str(py)})
        return tools, applied, written, rolled

    tools, applied, written, rolled = _session(
        ["--allow-apply"], {"PYTORCH_CUDA_ALLOC_CONF": BAD_ALLOC}, script
    )
    assert (
        tools["fix_apply"].annotations.destructive_hint and not tools["fix_apply"].annotations.read_only_hint
    )
    error, result, text = applied
    assert not error, text
    assert result["ok"] and result["snapshot"] and Path(result["snapshot"]).is_file()
    assert written
    error, undone, text = rolled
    assert not error and undone["ok"], text
    assert not activation.exists()


@needs_sdk
def test_ctrl_c_and_closed_stdin_stop_the_server_quietly() -> None:
    import signal
    import subprocess

    argv = [sys.executable, "-m", "envdoctor", "mcp"]
    closed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert closed.returncode == 0 and closed.stdout == "" and "Traceback" not in closed.stderr
    server = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )
    try:
        # Wait until it serves: a request answered means the event loop runs.
        request = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        assert '"id":1' in server.stdout.readline().replace(" ", "")
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 130 and "Traceback" not in err


def test_mcp_without_the_sdk_is_a_one_line_error(monkeypatch, capsys) -> None:
    import importlib.util as util

    from envdoctor.cli import main

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a))
    assert main(["mcp"]) == 2
    assert "pip install 'envdoctor[mcp]'" in capsys.readouterr().err


def test_redact_masks_secret_shapes_and_leaves_facts_alone() -> None:
    text = (
        f"HF_TOKEN={HF} Authorization: Bearer abcdefghijk12345 "
        f"https://user:{PASSWORD}@host/simple aws AKIAABCDEFGHIJKLMNOP sk-{'x' * 24}"
    )
    masked = redact(text)
    for secret in (HF, PASSWORD, "abcdefghijk12345", "AKIAABCDEFGHIJKLMNOP", "x" * 24):
        assert secret not in masked
    assert f"https://{MASK}@host/simple" in masked
    assert redact({"api_key": "12345", "nested": [{"password": "x"}], "n": 3}) == {
        "api_key": MASK,
        "nested": [{"password": MASK}],
        "n": 3,
    }
    # Real facts and findings carry no secret: nothing in them may be masked.
    for path in sorted(FACTS.glob("*.json")):
        data = load_facts(path).to_dict()
        assert redact(data) == data, path.name
