"""``mcp``: serve envdoctor's tools to coding agents (a Model Context Protocol server over stdio).

Touches: stdin and stdout (the protocol); its tools start the probes, and only with --allow-apply
change environments (fix apply/rollback, after a snapshot).

The server is envdoctor.mcp_server; it needs the optional ``mcp`` SDK, imported only here.
"""

from typing import Annotated

import typer

from envdoctor.cli import options as o
from envdoctor.errors import EXIT_OK, UsageError


def register(app: typer.Typer) -> None:
    o.command(app, "mcp")(mcp)


def mcp(
    allow_apply: Annotated[
        bool,
        typer.Option(
            "--allow-apply",
            help="Also offer fix_apply and fix_rollback (they change environments, with a snapshot first).",
        ),
    ] = False,
) -> int:
    """Serve envdoctor's tools to coding agents: a Model Context Protocol server over stdio.

    Needs the optional SDK: pip install 'envdoctor[mcp]'. Read-only unless --allow-apply.
    """
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise UsageError("the MCP server needs the mcp SDK: pip install 'envdoctor[mcp]'")
    from envdoctor.mcp_server import serve

    try:
        serve(allow_apply=allow_apply)
    except KeyboardInterrupt:  # Ctrl-C in a terminal: stop quietly, as the shell expects
        return 130
    return EXIT_OK
