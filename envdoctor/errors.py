"""envdoctor's one exception base: every error a user can cause carries the exit code it ends with.

Modules raise their own subclass (``FactsError``, ``RecipeError``, ...); the CLI catches
``EnvdoctorError`` once, prints ``envdoctor: error: <message>`` on one line and exits with
``exit_code`` (2: bad usage or unreadable input, unless a subclass says otherwise).
"""

from __future__ import annotations

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class EnvdoctorError(Exception):
    """An error to show the user as one line, ending the command with ``exit_code``."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(EnvdoctorError):
    """Options that cannot go together, or a value the command cannot use."""
