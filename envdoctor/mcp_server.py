"""``envdoctor mcp``: envdoctor's diagnoses as Model Context Protocol tools, over stdio.

Built on the official ``mcp`` SDK (``pip install 'envdoctor[mcp]'``), imported only when this command
runs. Read-only tools: ``check``, ``explain``, ``diagnose_report``, ``recommend``, ``fix_plan`` (a dry
run), ``rules``, ``diff`` and ``fit``. Tools that change an environment (``fix_apply``, ``fix_rollback``) exist
only when the server was started with ``--allow-apply``, and they run exactly what ``envdoctor fix
--apply`` runs: a snapshot first, a re-check after, a rollback when a step fails or the re-check is
worse. Every result goes through :func:`envdoctor.redact.redact`.

The commands that the CLI already implements (check, recommend, fix, diff, fit) are run through the CLI's
own ``main`` with ``--json``, so an agent gets the same JSON a user gets and the same refusals; their
output is captured under a lock (one command at a time: they share ``sys.stdout``).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

from envdoctor.redact import redact

INSTRUCTIONS = (
    "envdoctor diagnoses deep-learning environments (PyTorch, CUDA, drivers, GPUs, packages). Start with "
    "`check` (quick=true is instant; python= checks another interpreter), or `diagnose_report` for a pasted "
    "`python -m torch.utils.collect_env` / `nvidia-smi` / `pip list` text, or `explain` for an error message. "
    "Findings carry an id, severity, evidence and a fix; `fix_plan` shows the commands that would fix them."
)
_cli_lock = threading.Lock()


class ToolFailure(Exception):
    """Bad input to a tool: the message goes back to the agent as the tool's error."""


def run_cli(argv: list[str]) -> tuple[int, Any]:
    """``envdoctor ARGV`` in this process; (exit code, its JSON output). Exit 2 raises ToolFailure."""
    from envdoctor.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _cli_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # none expected: main returns every exit code
            code = exc.code if isinstance(exc.code, int) else 2
    if code == 2:
        raise ToolFailure(err.getvalue().strip() or f"envdoctor {argv[0]}: bad input")
    try:
        return code, json.loads(out.getvalue())
    except json.JSONDecodeError:
        raise ToolFailure(f"envdoctor {argv[0]} printed no JSON: {err.getvalue().strip()}") from None


def _python(python: str | None) -> list[str]:
    return ["--python", python] if python else []


def check(quick: bool = True, python: str | None = None) -> dict[str, Any]:
    """Probe this machine (or the interpreter ``python``): facts and findings, errors first."""
    code, data = run_cli(["check", "--json", *(["--quick"] if quick else []), *_python(python)])
    return redact(data | {"has_errors": code == 1})


def explain(text: str) -> dict[str, Any]:
    """Match an error message or traceback to finding ids, best first, each with its fix."""
    from envdoctor.explain import explain_text

    return redact(explain_text(text).to_dict())


def diagnose_report(text: str) -> dict[str, Any]:
    """Diagnose a pasted report (collect_env, nvidia-smi, pip list, an error log): facts and findings;
    without an error finding, also what was read (``recognised``) and the report to ask for (``ask_for``)."""
    from envdoctor.explain import diagnose, unsettled
    from envdoctor.paste import ReportError, facts_from_report
    from envdoctor.render import has_errors, render_json

    try:
        facts = facts_from_report(text)
    except ReportError as exc:
        raise ToolFailure(str(exc)) from None
    findings = diagnose(facts)
    payload = json.loads(render_json(facts, findings, unsettled(facts, findings)))
    return redact(payload | {"has_errors": has_errors(findings)})


def recommend(python: str | None = None) -> dict[str, Any]:
    """The newest known-good recipe this machine's driver and GPUs can run, and why others do not fit."""
    return redact(run_cli(["recommend", "--json", *_python(python)])[1])


def fix_plan(
    python: str | None = None,
    only: list[str] | None = None,
    include_warnings: bool = False,
    recipe: str | None = None,
) -> dict[str, Any]:
    """The fix plan (a dry run: nothing changes): pip commands, environment changes, manual steps."""
    return redact(
        run_cli(
            ["fix", "--json", "--quick", *_python(python), *_fix_options(only, include_warnings, recipe)]
        )[1]
    )


def _fix_options(only: list[str] | None, include_warnings: bool, recipe: str | None) -> list[str]:
    args = [f"--only={i}" for i in only or []]
    args += ["--include-warnings"] if include_warnings else []
    return args + (["--recipe", recipe] if recipe else [])


def rules() -> list[dict[str, Any]]:
    """Every finding id envdoctor can report: severity, area, meaning, fix and sources."""
    from envdoctor.rules import all_rules

    return [
        {"id": r.id, "severity": r.severity.value, "area": r.area, "summary": r.summary, "fix": r.fix,
         "sources": list(r.sources)}
        for r in sorted(all_rules(), key=lambda r: r.id)
    ]  # fmt: skip


def diff(reference: str, others: list[str]) -> dict[str, Any]:
    """Compare facts snapshots (paths to `check --json` files, or their JSON text); breaking ones first."""
    if not others:
        raise ToolFailure("diff needs at least one snapshot besides the reference")
    with tempfile.TemporaryDirectory(prefix="envdoctor-mcp-") as tmp:
        paths = [
            _snapshot_file(s, Path(tmp) / f"snapshot{i}.json") for i, s in enumerate([reference, *others])
        ]
        code, data = run_cli(["diff", *paths, "--json"])
    return redact(data | {"breaking": code == 1})


def _snapshot_file(value: str, scratch: Path) -> str:
    """A path as is; JSON text written to ``scratch``."""
    if value.lstrip().startswith("{"):
        scratch.write_text(value, encoding="utf-8")
        return str(scratch)
    return value


def fit(
    model: str,
    gpus: int = 1,
    zero: int = 0,
    fsdp: bool = False,
    precision: str = "bf16",
    optimizer: str = "adamw",
    seq_len: int = 2048,
    micro_batch: int = 1,
    grad_accum: int = 1,
    checkpointing: bool = False,
    gpu: str | None = None,
    memory_gib: float | None = None,
) -> dict[str, Any]:
    """Will a training run fit: memory per GPU (weights, gradients, optimizer, activations), the verdict
    against this machine's GPUs (or ``gpu`` / ``memory_gib``), and the smallest change that fits."""
    argv = [
        "fit",
        "--json",
        "--model",
        model,
        "--gpus",
        str(gpus),
        "--zero",
        str(zero),
        "--precision",
        precision,
    ]
    argv += ["--optimizer", optimizer, "--seq-len", str(seq_len), "--micro-batch", str(micro_batch)]
    argv += (
        ["--grad-accum", str(grad_accum)]
        + (["--fsdp"] if fsdp else [])
        + (["--checkpointing"] if checkpointing else [])
    )
    argv += (["--gpu", gpu] if gpu else []) + (
        ["--memory-gib", str(memory_gib)] if memory_gib is not None else []
    )
    return redact(run_cli(argv)[1])


def fix_apply(python: str, only: list[str] | None = None, include_warnings: bool = False) -> dict[str, Any]:
    """Run the fix plan on the interpreter ``python``: snapshot, apply, re-check, roll back if worse."""
    code, data = run_cli(
        ["fix", "--apply", "--json", "--python", python, *_fix_options(only, include_warnings, None)]
    )
    return redact(data | {"ok": code == 0} if isinstance(data, dict) else data)


def fix_rollback(python: str) -> dict[str, Any]:
    """Restore the interpreter ``python`` to its last fix snapshot."""
    from envdoctor.fix.run import NoSnapshot, undo_last

    try:
        undone = undo_last(Path(python))
    except NoSnapshot as exc:
        raise ToolFailure(str(exc)) from None
    done = undone.result
    return redact({"snapshot": str(undone.snapshot.path), "ok": done.ok, "remaining": list(done.remaining)})


READ_ONLY = (check, explain, diagnose_report, recommend, fix_plan, rules, diff, fit)
CHANGING = (fix_apply, fix_rollback)


def build_server(allow_apply: bool = False):
    """The MCP server with envdoctor's tools (the changing ones only with ``allow_apply``)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from envdoctor import __version__

    server = MCPServer("envdoctor", version=__version__, instructions=INSTRUCTIONS)
    for fn in READ_ONLY + (CHANGING if allow_apply else ()):
        changes = fn in CHANGING
        server.add_tool(
            _as_tool_error(fn, ToolError),
            name=fn.__name__,
            description=(fn.__doc__ or "").strip(),
            annotations=ToolAnnotations(
                read_only_hint=not changes, destructive_hint=changes, open_world_hint=False
            ),
        )
    return server


def _as_tool_error(fn, tool_error: type[Exception]):
    """``fn`` with ToolFailure turned into the SDK's ToolError (an error result, not a crash)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolFailure as exc:
            raise tool_error(redact(str(exc))) from None

    return wrapper


def serve(allow_apply: bool = False) -> None:
    """Serve over stdin/stdout until the client closes them."""
    build_server(allow_apply).run("stdio")
