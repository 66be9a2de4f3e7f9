"""Triage: ``explain`` (an error message -> finding ids) and ``diff`` (facts of nodes that disagree).

Touches: reads the message, facts files and reports it is given (or stdin). Starts nothing, writes nothing.

Parses options and renders; the work is envdoctor.explain and envdoctor.diff.
"""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, EXIT_PROBLEM, UsageError


def register(app: typer.Typer) -> None:
    o.command(app, "explain")(explain)
    o.command(app, "diff")(diff)


def explain(
    text: Annotated[
        str | None,
        typer.Argument(help="An error message, or a file holding one (- for stdin).", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", metavar="FILE", help="Read the error message from FILE.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ranked candidates as JSON. Same as --format json.")
    ] = False,
    fmt: o.TextOrJson = None,
    keep_hostnames: o.KeepHostnames = False,
) -> int:
    """Match an error message (and any report around it) to finding ids, best first. Exit 1 on an error."""
    import json

    from envdoctor.explain import explain_text, render_explanation

    as_json = o.one_format(as_json, fmt) == "json"
    message = _explain_input(text, file)
    result = explain_text(message)
    redactor = o.redactor(keep_hostnames, message)
    if as_json:
        sys.stdout.write(json.dumps(redactor.data(result.to_dict()), indent=2) + "\n")
    else:
        sys.stdout.write(redactor.text(render_explanation(result)))
    return EXIT_PROBLEM if result.has_errors else EXIT_OK


def _explain_input(text: str | None, file: Path | None) -> str:
    """The text to explain: ``--file``, stdin for ``-``, a path-like single word, or the text itself.

    Only a single word without whitespace is ever looked up as a file, so a long error message is
    never handed to stat() (which fails on names over 255 bytes). A word that starts like a path
    ('/', './', '../', '~') must be a readable file.
    """
    from envdoctor.sources import read_input

    if (text is None) == (file is None):
        raise UsageError("explain: give an error message, - for stdin, or --file FILE (one of them)")
    if file is not None:
        return read_input(file)
    assert text is not None
    if not text.strip():
        raise UsageError("explain: the error message is empty")
    if text == "-" or text.startswith(("/", "./", "../", "~")) and not any(c.isspace() for c in text):
        return read_input(Path(text).expanduser())
    if not any(c.isspace() for c in text) and len(os.fsencode(text)) < 256:
        try:
            if Path(text).is_file():
                return read_input(Path(text))
        except (OSError, ValueError):
            pass
    return text


def diff(
    reference: Annotated[Path, typer.Argument(help="Facts of the reference node (`check --json` output).")],
    others: Annotated[list[Path], typer.Argument(help="Facts of one or more other nodes.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the differences as JSON. Same as --format json.")
    ] = False,
    fmt: o.TextJsonHtml = None,
    keep_hostnames: o.KeepHostnames = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Also list package version differences.")
    ] = False,
) -> int:
    """Compare facts snapshots; exit 1 if they differ in a way that breaks multi-node training."""
    import json

    from envdoctor import diff as differ
    from envdoctor.facts import load_facts

    fmt = o.one_format(as_json, fmt)
    ref = load_facts(reference)
    results = [(str(p), differ.compare(ref, load_facts(p))) for p in others]
    redactor = o.redactor(keep_hostnames)  # facts files are untrusted text, and diffs get pasted too
    if fmt == "html":
        from envdoctor.render_html import render_diff

        sys.stdout.write(redactor.text(render_diff(results, str(reference))))
    elif fmt == "json":
        rows = [
            {"file": n, "breaking": differ.breaking(d), "differences": differ.to_dict(d)} for n, d in results
        ]
        payload = {"reference": str(reference), "results": rows}
        sys.stdout.write(json.dumps(redactor.data(payload), indent=2) + "\n")
    else:
        sys.stdout.write(redactor.text(differ.render(results, str(reference), verbose=verbose)))
    return EXIT_PROBLEM if any(differ.breaking(d) for _, d in results) else EXIT_OK
