"""What a fix says while it runs: the callbacks :func:`envdoctor.fix.run.run_fix` calls.

Imports nothing at run time, so a command module can subclass it without loading the fix package;
touches nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envdoctor.fix.model import Plan
    from envdoctor.proof import Proof, SmokeOptions


class Progress:
    """What a run says while it runs. This one says nothing (JSON output, the MCP server);
    the command line's text output overrides each method."""

    def planned(self, plan: Plan) -> None:
        """The plan is made; with ``apply`` it runs next."""

    def log(self, message: str) -> None:
        """A step of the transaction (snapshot, pip command, rollback)."""

    def waiting(self, message: str) -> None:
        """Another fix holds the lock of the target."""

    def proving(self, python: str, options: SmokeOptions) -> None:
        """A smoke-train starts."""

    def proved(self, proof: Proof) -> None:
        """A smoke-train ended (before the rollback its failure causes)."""


SILENT = Progress()
