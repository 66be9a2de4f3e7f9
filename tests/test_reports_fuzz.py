"""Odd input never crashes the report reader: it gives Facts or a one-line ReportError, nothing else.

Mutations of the real corpus reports (truncated, lines shuffled, bytes inserted, lines doubled) and
arbitrary text from hypothesis.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts
from envdoctor.paste import ReportError, decode_report, facts_from_report

CORPUS = Path(__file__).parent / "corpus"
REPORTS = [
    (c["report"] + "\n" + c["error"])
    for c in (yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("*.yaml")))
]
NOISE = [
    "|",
    ":",
    "GPU 0:",
    "...",
    "&gt;",
    "\t",
    "+cu",
    "==",
    "```",
    "\x1b[31m",
    "\uff1a",
    "\u2026",
    "9" * 30,
]


def _read(text: str) -> None:
    try:
        facts = facts_from_report(text)
    except ReportError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(facts, Facts) and facts.origin == "report"
    assert facts.to_dict()  # the facts serialise (what --json prints)


def _mutations(text: str, rng: random.Random) -> list[str]:
    lines = text.splitlines()
    shuffled = lines[:]
    rng.shuffle(shuffled)
    cut = rng.randrange(len(text) + 1)
    raw = bytearray(text.encode("utf-8"))
    for _ in range(8):
        raw.insert(rng.randrange(len(raw) + 1), rng.randrange(256))
    noisy = [line + rng.choice(NOISE) if rng.random() < 0.3 else line for line in lines]
    return [
        text[:cut],
        text[cut:],
        "\n".join(shuffled),
        raw.decode("utf-8", errors="replace"),
        "\n".join(noisy),
        "\n".join(line for line in lines for _ in (0, 1)),
        text.replace(":", "", rng.randrange(1, 4)),
    ]


def test_mutated_corpus_reports_give_facts_or_report_error():
    rng = random.Random(20240601)
    for text in REPORTS:
        for mutated in _mutations(text, rng):
            _read(mutated)


def test_random_bytes_are_refused_or_read_never_crash():
    rng = random.Random(7)
    for n in (0, 1, 17, 300, 5000):
        data = bytes(rng.randrange(256) for _ in range(n))
        try:
            text = decode_report(data, "fuzz")
        except ReportError:
            continue
        _read(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(
                [
                    "PyTorch version: ",
                    "CUDA used to build PyTorch: ",
                    "GPU models and configuration: ",
                    "Nvidia driver version: ",
                    "| NVIDIA-SMI 535.54.03    Driver Version: 535.54.03    CUDA Version: 12.2 |",
                    "|   0  NVIDIA A100-SXM... On  | 00000000:07:00.0 Off |   0 |",
                    "[pip3] torch==",
                    "[conda] pytorch ",
                    "GPU 0: ",
                    "- PyTorch version (GPU?): ",
                    ">>> torch.__version__",
                    "Cuda compilation tools, release ",
                    "docker run --shm-size=",
                ]
            ),
            st.from_regex(r"\d{1,4}(\.\d{1,6}){0,3}([a-z+._-]{0,3}\w{0,8})?", fullmatch=True),
        ),
        max_size=30,
    ).map("\n".join)
)
def test_arbitrary_report_like_text_gives_facts_or_report_error(text):
    _read(text)
