"""The executor: snapshot the environment, run a plan's actions, re-check, roll back on failure.

It runs exactly the plan it is given (it never plans) against one target interpreter, through
``<python> -m pip`` or ``uv pip --python <python>`` when uv is on PATH. Before the first change it
saves a snapshot (every installed distribution with its exact version, plus the activation file)
under ``<prefix>/.envdoctor/snapshots/``; if a step fails or the re-check finds more errors than
before, it restores that snapshot. Environment variables go to ``<prefix>/envdoctor-activate.sh``,
a file the user sources: envdoctor never edits shell start-up files.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name

from envdoctor.findings import Finding, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.plan import ACTIVATION_NAME, STATE_DIR, Plan, needs_constraints, pip_args
from envdoctor.probes._process import run, run_python

PIP_TIMEOUT_S = 1800.0  # one pip command (a CUDA torch download is several GB)
QUERY_TIMEOUT_S = 60.0  # listing distributions, reading the interpreter's paths
ACTIVATION_HEADER = (
    "# Written by `envdoctor fix`. Source it to apply the environment fixes:\n#   . {path}\n"
    "# (envdoctor never edits your shell start-up files.)\n"
)

Log = Callable[[str], None]


class ApplyError(RuntimeError):
    """The target cannot be inspected or changed (one-line message)."""


# --- the activation file ---------------------------------------------------------------------


def activation_path(prefix: str) -> Path:
    return Path(prefix) / ACTIVATION_NAME


def read_activation(prefix: str | None) -> dict[str, str | None]:
    """What the activation file sets (name -> value) or unsets (name -> None); {} when absent."""
    if not prefix:
        return {}
    try:
        text = activation_path(prefix).read_text(encoding="utf-8")
    except OSError:
        return {}
    return parse_activation(text)


def parse_activation(text: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
        elif len(words) == 2 and words[0] == "unset":
            env[words[1]] = None
    return env


def render_activation(path: Path, env: dict[str, str | None]) -> str:
    lines = [ACTIVATION_HEADER.format(path=shlex.quote(str(path)))]
    for name in sorted(env):
        value = env[name]
        lines.append(f"unset {name}\n" if value is None else f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


@contextmanager
def activated(env: dict[str, str | None]) -> Iterator[None]:
    """This process's environment as if the activation file had been sourced (for the re-check)."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- inspecting the target -------------------------------------------------------------------

_TARGET_SRC = """
import json, sys, sysconfig
from importlib import metadata
dists = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if name and name not in dists:
        dists[name] = d.version
print(json.dumps({"prefix": sys.prefix, "base_prefix": sys.base_prefix,
                  "stdlib": sysconfig.get_path("stdlib"), "executable": sys.executable,
                  "distributions": dists}))
"""


@dataclass
class Target:
    python: str
    prefix: str
    base_prefix: str
    stdlib: str
    distributions: dict[str, str]  # exact name -> version, as installed

    @property
    def in_venv(self) -> bool:
        return self.prefix != self.base_prefix


def inspect_target(python: str) -> Target:
    """Ask the interpreter for its prefix, stdlib path and installed distributions."""
    try:
        done = run_python(python, _TARGET_SRC, timeout=QUERY_TIMEOUT_S)
    except OSError as exc:
        raise ApplyError(f"{python}: cannot run ({exc.strerror or exc})") from None
    if done.timed_out or done.returncode != 0:
        raise ApplyError(f"{python}: cannot list its packages ({done.stderr_tail() or 'timed out'})")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Target(python, data["prefix"], data["base_prefix"], data["stdlib"], data["distributions"])


def conda_meta_packages(prefix: str) -> dict[str, str]:
    """Packages recorded in ``<prefix>/conda-meta`` (name -> version); {} when there is none."""
    out: dict[str, str] = {}
    for record in sorted(Path(prefix, "conda-meta").glob("*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name"):
            out[str(data["name"])] = str(data.get("version", ""))
    return out


def live_refusals(target: Target, allow_system: bool, allow_conda: bool) -> list[str]:
    """The executor's own check of the interpreter it is about to change (facts may be stale)."""
    out = []
    if not target.in_venv and Path(target.stdlib, "EXTERNALLY-MANAGED").is_file() and not allow_system:
        out.append(
            f"{target.python} is an externally-managed system Python (PEP 668): pip must not change it. "
            f"Safer: python3 -m venv .venv && envdoctor fix --python .venv/bin/python "
            f"(or pass --break-system-packages to do it anyway)"
        )
    conda_torch = [n for n in conda_meta_packages(target.prefix) if n in ("torch", "pytorch")]
    if conda_torch and not allow_conda:
        out.append(
            f"torch in {target.prefix} is managed by conda ({', '.join(conda_torch)} in conda-meta): pip "
            f"would overwrite conda's files. Safer: a fresh venv or `conda install` "
            f"(or pass --allow-conda to use pip anyway)"
        )
    return out


# --- snapshots -------------------------------------------------------------------------------


@dataclass
class Snapshot:
    path: Path
    python: str
    created: str
    distributions: dict[str, str]
    activation: str | None  # the activation file's text, None if there was none

    def to_dict(self) -> dict:
        return {
            "python": self.python,
            "created": self.created,
            "distributions": self.distributions,
            "activation": self.activation,
        }


def snapshot_dir(prefix: str) -> Path:
    return Path(prefix) / STATE_DIR / "snapshots"


def take_snapshot(target: Target) -> Snapshot:
    """Record the exact installed distributions and the activation file before any change."""
    now = datetime.now(timezone.utc)
    path = snapshot_dir(target.prefix) / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    try:
        activation = activation_path(target.prefix).read_text(encoding="utf-8")
    except FileNotFoundError:
        activation = None
    snap = Snapshot(path, target.python, now.isoformat(), dict(target.distributions), activation)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snap.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return snap


def latest_snapshot(prefix: str) -> Snapshot | None:
    """The newest snapshot of this prefix (file names sort by time), or None."""
    files = sorted(snapshot_dir(prefix).glob("*.json"))
    if not files:
        return None
    try:
        data = json.loads(files[-1].read_text(encoding="utf-8"))
        return Snapshot(
            files[-1], data["python"], data["created"], dict(data["distributions"]), data["activation"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ApplyError(f"{files[-1]}: unreadable snapshot ({exc.__class__.__name__})") from None


# --- running ---------------------------------------------------------------------------------


def installer_argv(python: str, args: list[str]) -> list[str]:
    """``<python> -m pip ARGS``, or ``uv pip ARGS --python <python>`` when uv is on PATH."""
    uv = shutil.which("uv")
    if uv is None:
        return [python, "-m", "pip", "--disable-pip-version-check", *args]
    translated = [
        {"--force-reinstall": "--reinstall"}.get(a, a) for a in args if a not in ("-y", "--no-input")
    ]
    return [uv, "pip", translated[0], "--python", python, *translated[1:]]


@dataclass
class StepResult:
    command: str
    ok: bool
    seconds: float
    detail: str = ""  # last line of the installer's error output on failure


def run_pip(python: str, args: list[str], timeout: float) -> StepResult:
    argv = installer_argv(python, args)
    start = time.monotonic()
    try:
        done = run(argv, timeout=timeout)
    except OSError as exc:
        return StepResult(shlex.join(argv), False, 0.0, f"cannot start: {exc.strerror or exc}")
    seconds = time.monotonic() - start
    if done.timed_out:
        return StepResult(shlex.join(argv), False, seconds, f"timed out after {timeout:.0f} s")
    detail = "" if done.returncode == 0 else _error_line(done.stderr or done.stdout)
    return StepResult(shlex.join(argv), done.returncode == 0, seconds, detail)


def _error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR") or "error" in line.lower()]
    return (errors or lines or ["failed"])[-1][:300]


@dataclass
class ApplyResult:
    ok: bool
    steps: list[StepResult] = field(default_factory=list)
    snapshot: Snapshot | None = None
    errors_before: int = 0
    errors_after: int | None = None
    findings_after: list[Finding] = field(default_factory=list)
    rolled_back: bool = False
    rollback: RollbackResult | None = None
    reason: str = ""  # why it failed / rolled back
    refused: list[str] = field(default_factory=list)


def count_errors(findings: list[Finding]) -> int:
    return sum(1 for f in findings if f.severity is Severity.ERROR)


def apply_plan(
    plan: Plan,
    recheck: Callable[[], list[Finding]],
    errors_before: int,
    allow_system: bool = False,
    allow_conda: bool = False,
    timeout: float = PIP_TIMEOUT_S,
    log: Log = lambda _msg: None,
) -> ApplyResult:
    """Snapshot, run every automatic step, re-check; roll back if a step fails or errors grow."""
    if not plan.python:
        raise ApplyError("the plan names no interpreter")
    target = inspect_target(plan.python)
    refused = live_refusals(target, allow_system, allow_conda)
    if refused:
        return ApplyResult(ok=False, refused=refused, reason="refused", errors_before=errors_before)
    snap = take_snapshot(target)
    log(f"snapshot: {snap.path}")
    result = ApplyResult(ok=True, snapshot=snap, errors_before=errors_before)
    constraints = _write_constraints(target.prefix, plan.constraints)
    env_changes: dict[str, str | None] = {}
    for step in plan.automatic_steps:
        action = step.action
        if isinstance(action, SetEnv):
            env_changes[action.name] = action.value
            continue
        assert isinstance(action, (PipInstall, PipUninstall))
        use_constraints = constraints if needs_constraints(action) else None
        log(f"running: {plan.describe(step)}")
        outcome = run_pip(target.python, pip_args(action, use_constraints), timeout)
        result.steps.append(outcome)
        if not outcome.ok:
            result.ok = False
            result.reason = f"step failed: {plan.describe(step)}: {outcome.detail}"
            break
    if result.ok and env_changes:
        env = read_activation(target.prefix) | env_changes
        path = activation_path(target.prefix)
        path.write_text(render_activation(path, env), encoding="utf-8")
        log(f"wrote {path}")
    if result.ok:
        with activated(read_activation(target.prefix)):
            result.findings_after = recheck()
        result.errors_after = count_errors(result.findings_after)
        if result.errors_after > errors_before:
            result.ok = False
            result.reason = f"re-check found {result.errors_after} errors, {errors_before} before"
    if not result.ok:
        log(f"rolling back: {result.reason}")
        result.rollback = rollback(snap, timeout=timeout, log=log)
        result.rolled_back = True
    return result


def _write_constraints(prefix: str, constraints: list[str]) -> str | None:
    if not constraints:
        return None
    path = Path(prefix) / STATE_DIR / "constraints.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c}\n" for c in constraints), encoding="utf-8")
    return str(path)


@dataclass
class RollbackResult:
    ok: bool
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # differences left after the rollback


def diff_distributions(before: dict[str, str], after: dict[str, str]) -> tuple[list[str], list[str]]:
    """(names added since ``before``, ``name==version`` pins that must be reinstalled)."""
    b = {canonicalize_name(k): (k, v) for k, v in before.items()}
    a = {canonicalize_name(k): (k, v) for k, v in after.items()}
    added = sorted(a[k][0] for k in a.keys() - b.keys())
    changed = sorted(f"{b[k][0]}=={b[k][1]}" for k in b if k not in a or a[k][1] != b[k][1])
    return added, changed


def rollback(snap: Snapshot, timeout: float = PIP_TIMEOUT_S, log: Log = lambda _msg: None) -> RollbackResult:
    """Return the interpreter to the snapshot: drop new distributions, reinstall exact old versions."""
    target = inspect_target(snap.python)
    added, changed = diff_distributions(snap.distributions, target.distributions)
    result = RollbackResult(ok=True, removed=added, restored=changed)
    if added:
        log(f"uninstalling {', '.join(added)}")
        result.steps.append(run_pip(snap.python, ["uninstall", "-y", *added], timeout))
    if changed:
        log(f"reinstalling {', '.join(changed)}")
        result.steps.append(run_pip(snap.python, ["install", "--no-input", "--no-deps", *changed], timeout))
    path = activation_path(str(Path(target.prefix)))
    if snap.activation is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(snap.activation, encoding="utf-8")
    after = inspect_target(snap.python).distributions
    left_added, left_changed = diff_distributions(snap.distributions, after)
    result.remaining = [f"+{n}" for n in left_added] + [f"~{p}" for p in left_changed]
    result.ok = not result.remaining and all(s.ok for s in result.steps)
    return result


def render_result(result: ApplyResult) -> str:
    """What happened, one line per step, then the verdict (applied / rolled back / refused)."""
    lines = [f"  REFUSED: {r}" for r in result.refused]
    for s in result.steps:
        lines.append(f"  {'ok  ' if s.ok else 'FAIL'} {s.seconds:6.1f}s  {s.command}")
        if s.detail:
            lines.append(f"        {s.detail}")
    if result.rolled_back and result.rollback is not None:
        rb = result.rollback
        state = "restored" if rb.ok else f"INCOMPLETE ({', '.join(rb.remaining)})"
        lines.append(f"Rolled back ({result.reason}): environment {state} from {result.snapshot.path}.")
        if rb.removed or rb.restored:
            lines.append(
                f"  removed {', '.join(rb.removed) or '-'}; reinstalled {', '.join(rb.restored) or '-'}"
            )
    elif result.ok:
        lines.append(
            f"Applied. Errors before: {result.errors_before}, after: {result.errors_after}. "
            f"Undo with: envdoctor fix --rollback --python {result.snapshot.python}"
        )
        for f in result.findings_after:
            if f.severity is Severity.ERROR:
                lines.append(f"  still: {f.id}: {f.message}")
    return "\n".join(lines) + "\n"


def result_dict(plan: Plan, result: ApplyResult) -> dict:
    """The plan and its outcome for ``fix --apply --json``."""
    rb = result.rollback
    return {
        "plan": plan.to_dict(),
        "ok": result.ok,
        "refused": result.refused,
        "snapshot": str(result.snapshot.path) if result.snapshot else None,
        "steps": [vars(s) for s in result.steps],
        "errors_before": result.errors_before,
        "errors_after": result.errors_after,
        "findings_after": [f.to_dict() for f in result.findings_after],
        "rolled_back": result.rolled_back,
        "reason": result.reason,
        "rollback": None
        if rb is None
        else {"ok": rb.ok, "removed": rb.removed, "restored": rb.restored, "remaining": rb.remaining},
    }
