"""Run the CLI in process, capturing what it writes, as a user at a terminal would see it."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from unittest import mock

from envdoctor.cli import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr, for assertions that do not care which stream carried a line."""
        return self.stdout + self.stderr


def invoke(args: list[str], input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """``envdoctor ARGS`` with ``input`` on stdin and ``env`` added to the environment.

    A SystemExit (none is expected: main returns every exit code) becomes the exit code.
    """
    out, err = io.StringIO(), io.StringIO()
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
    try:
        with (
            mock.patch.dict(os.environ, env or {}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = stdin
    return Result(code, out.getvalue(), err.getvalue())
