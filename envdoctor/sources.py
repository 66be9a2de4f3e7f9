"""Where facts come from: a facts file, a pasted report, or live probes of an interpreter.

The commands that diagnose (check, fix, recommend, fit) all take facts from exactly one of these;
errors are ``EnvdoctorError`` subclasses (one line, exit 2), so callers need not translate them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from envdoctor.errors import UsageError

if TYPE_CHECKING:
    from envdoctor.facts import Facts


def gather_facts(
    python: Path | None,
    facts_file: Path | None,
    quick: bool = False,
    report: str | None = None,
    while_probing: Callable[[], object] | None = None,
) -> Facts:
    """Facts from exactly one source: a facts file, a pasted report, or live probes.

    ``while_probing`` runs once the probes are under way (work that would otherwise wait for them).
    """
    sources = [s for s in (python, facts_file, report) if s is not None]
    if len(sources) > 1:
        raise UsageError("--python, --facts and --from-report are mutually exclusive")
    if facts_file is not None:
        from envdoctor.facts import load_facts

        return load_facts(facts_file)
    if report is not None:
        from envdoctor.paste import facts_from_report

        return facts_from_report(report)
    from envdoctor.probes import collect, running_probes
    from envdoctor.waiting import Spinner

    with Spinner(sys.stderr, running_probes):
        return collect(python=str(python) if python else None, quick=quick, while_waiting=while_probing)


def target_python(python: Path | None) -> str:
    """An interpreter path for ``--python``: a venv or conda directory means its bin/python."""
    if python is None:
        return sys.executable
    from envdoctor.probes import resolve_target

    return resolve_target(str(python))


def read_input(path: Path) -> str:
    """A text input (a file, or stdin for '-'), with one-line errors for unreadable input."""
    from envdoctor.paste import read_report_text

    return read_report_text(str(path))
