"""Faults of the Docker engine's socket: it accepts a connection and never answers, or trickles a
byte at a time (which no per-read timeout catches)."""

from __future__ import annotations

import json

import pytest
from fakes import silent_server
from fault_helpers import Fault, one_line_error, rows_by_test, run_fault

FAULTS = [
    Fault(
        "test_build_engine_silent",
        "DOCKER_HOST accepts connections and never answers",
        "DOCKER_HOST=unix://SILENT envdoctor build --recipe torch213-cpu --no-torch",
        "the first ping is bounded (10 s in all): one line naming the host, exit 2",
        2,
        30,
    ),
    Fault(
        "test_build_engine_trickles",
        "DOCKER_HOST answers one byte every 0.2 s, then goes silent",
        "DOCKER_HOST=tcp://127.0.0.1:PORT envdoctor build --recipe torch213-cpu --no-torch",
        "the same bound holds however the bytes arrive: one line, exit 2",
        2,
        30,
    ),
    Fault(
        "test_check_engine_trickles",
        "the same trickling engine during check",
        "DOCKER_HOST=tcp://127.0.0.1:PORT ENVDOCTOR_PROBE_TIMEOUT=2 envdoctor check --quick --json",
        "the Docker probe is abandoned at its bound; the container area reports the failure",
        0,
        20,
    ),
]
ROW = rows_by_test(FAULTS)
BUILD = ["build", "--recipe", "torch213-cpu", "--no-torch"]
# The start of an HTTP answer, sent too slowly to ever finish within any bound that matters.
TRICKLE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"


def test_build_engine_silent(tmp_path) -> None:
    with silent_server(tmp_path / "docker.sock") as url:
        ran = run_fault(ROW["test_build_engine_silent"], BUILD, env={"DOCKER_HOST": url})
    one_line_error(ran, url, "did not answer")


def test_build_engine_trickles() -> None:
    with silent_server(trickle=TRICKLE) as url:
        ran = run_fault(ROW["test_build_engine_trickles"], BUILD, env={"DOCKER_HOST": url})
    one_line_error(ran, url, "did not answer")


@pytest.mark.parametrize("quiet", [b"", TRICKLE], ids=["silent", "trickle"])
def test_check_engine_trickles(quiet) -> None:
    with silent_server(trickle=quiet) as url:
        env = {"DOCKER_HOST": url, "ENVDOCTOR_PROBE_TIMEOUT": "2"}
        ran = run_fault(ROW["test_check_engine_trickles"], ["check", "--quick", "--json"], env=env)
    facts = json.loads(ran.stdout)["facts"]
    assert facts["docker"]["status"] != "ok"
    assert facts["docker"]["status"] == "error" or "docker" in facts["probe_errors"]
