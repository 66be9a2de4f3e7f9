"""The executor: lock, snapshot the environment, run a plan's actions, re-check, roll back on failure.

It runs exactly the plan it is given (it never plans) against one target interpreter, through
``<python> -m pip`` or ``uv pip --python <python>`` when uv is on PATH. Under the prefix's lock it
first stashes every installed file (:mod:`envdoctor.transaction`); if a step fails, the re-check
finds more errors than before, a proof (smoke-train) fails or a signal arrives, the files are
renamed back from the stash. The installer runs in its own process group, gets forwarded signals,
and dies with envdoctor. Environment variables go to ``<prefix>/envdoctor-activate.sh``, a file
the user sources: envdoctor never edits shell start-up files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from packaging.utils import canonicalize_name

from envdoctor.findings import Finding, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.plan import ACTIVATION_NAME, STATE_DIR, Plan, needs_constraints, pip_args
from envdoctor.probes._process import run_python
from envdoctor.transaction import (
    INSTALLERS,
    ApplyError,
    Restored,
    Snapshot,
    discard,
    installer_removals,
    latest_snapshot,
    locked,
    read_layout,
    restore_files,
    snapshot_dir,
    take_snapshot,
    write_atomic,
)

__all__ = ["ApplyError", "apply_plan", "latest_snapshot", "locked", "rollback", "snapshot_dir"]

PIP_TIMEOUT_S = 1800.0  # one pip command (a CUDA torch download is several GB)
STOP_GRACE_S = 30.0  # after a forwarded SIGINT/SIGTERM, time the installer gets to stop before SIGKILL
QUERY_TIMEOUT_S = 60.0  # listing distributions, reading the interpreter's paths
ACTIVATION_HEADER = (
    "# Written by `envdoctor fix`. Source it to apply the environment fixes:\n#   . {path}\n"
    "# (envdoctor never edits your shell start-up files.)\n"
)

Log = Callable[[str], None]


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


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP during a transaction: remembered and forwarded to the installer's
    process group (started in a session of its own, so a terminal's Ctrl-C reaches only envdoctor);
    the transaction then rolls back instead of dying half-way."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen | None = None
        self.raising = False  # raise KeyboardInterrupt too (while a smoke-train runs)
        self._saved: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signum)
        if self.raising:
            raise KeyboardInterrupt

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The installer gets SIGKILL when envdoctor dies (SIGKILL included): it never runs on detached."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None


@dataclass
class StepResult:
    command: str
    ok: bool
    seconds: float
    detail: str = ""  # last line of the installer's error output on failure


def run_pip(
    python: str, args: list[str], timeout: float, guard: Interrupts | None = None, lock_fd: int | None = None
) -> StepResult:
    """One installer command, bounded by ``timeout``; after a forwarded signal, by :data:`STOP_GRACE_S`.

    The installer inherits the prefix's lock (``lock_fd``): were it ever to outlive envdoctor, no
    other fix or rollback could start until it ended.
    """
    argv = installer_argv(python, args)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=() if lock_fd is None else (lock_fd,),
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        return StepResult(shlex.join(argv), False, 0.0, f"cannot start: {exc.strerror or exc}")
    if guard is not None:
        guard.child = proc
    deadline, detail = start + timeout, ""
    while True:
        try:
            out, err = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if guard is not None and guard.received and deadline > now + STOP_GRACE_S:
                deadline = now + STOP_GRACE_S
            if now >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                detail = (
                    "stopped" if guard is not None and guard.received else f"timed out after {timeout:.0f} s"
                )
                break
    if guard is not None:
        guard.child = None
    text = (err or out or b"").decode("utf-8", errors="replace")
    ok = proc.returncode == 0 and not detail
    if guard is not None and guard.received:
        detail = f"interrupted by {guard.name}"
    return StepResult(
        shlex.join(argv), ok, time.monotonic() - start, detail or ("" if ok else _error_line(text))
    )


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
    interrupted: str | None = None  # the signal that stopped it (SIGINT, SIGTERM, SIGHUP)


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
    prove: Callable[[], str | None] | None = None,
    lock_wait: float = 0.0,
) -> ApplyResult:
    """Lock, snapshot, run every automatic step, re-check (then ``prove``, e.g. a smoke-train, whose
    answer is a failure reason or None); roll back if a step fails, errors grow, the proof fails or
    a signal arrives. The environment ends as planned or exactly as it was."""
    if not plan.python:
        raise ApplyError("the plan names no interpreter")
    target = inspect_target(plan.python)
    refused = live_refusals(target, allow_system, allow_conda)
    if refused:
        return ApplyResult(ok=False, refused=refused, reason="refused", errors_before=errors_before)
    with locked(target.prefix, lock_wait, log) as lock_fd, Interrupts() as guard:
        snap = take_snapshot(
            target.python,
            target.distributions,
            _read_text(activation_path(target.prefix)),
            _indexes(plan),
            log,
        )
        log(f"snapshot: {snap.path}")
        result = ApplyResult(ok=True, snapshot=snap, errors_before=errors_before)
        try:
            _run_steps(plan, target, result, timeout, log, guard, lock_fd)
            if result.ok and not guard.received:
                with activated(read_activation(target.prefix)):
                    _recheck_and_prove(result, recheck, prove, guard)
        except KeyboardInterrupt:  # raised by the guard while a smoke-train ran
            guard.raising = False
            guard.received = guard.received or signal.SIGINT
        except Exception as exc:  # a full disk writing the activation file, a failing probe: undo
            result.ok, result.reason = False, f"{type(exc).__name__}: {exc}"
        if guard.received:
            result.ok, result.interrupted = False, guard.name
            result.reason = f"interrupted by {guard.name}"
        if not result.ok:
            log(f"rolling back: {result.reason}")
            result.rollback = rollback(snap, timeout=timeout, log=log)
            result.rolled_back = True
    return result


def _recheck_and_prove(
    result: ApplyResult,
    recheck: Callable[[], list[Finding]],
    prove: Callable[[], str | None] | None,
    guard: Interrupts,
) -> None:
    result.findings_after = recheck()
    result.errors_after = count_errors(result.findings_after)
    if result.errors_after > result.errors_before:
        result.ok = False
        result.reason = f"re-check found {result.errors_after} errors, {result.errors_before} before"
    if not result.ok or prove is None or guard.received:
        return
    guard.raising = True  # the smoke-train stops its workers on KeyboardInterrupt
    try:
        failure = prove()
    except KeyboardInterrupt:
        return  # guard.received says which signal; apply_plan rolls back
    finally:
        guard.raising = False
    if failure:
        result.ok, result.reason = False, failure


def _run_steps(
    plan: Plan, target: Target, result: ApplyResult, timeout: float, log: Log, guard: Interrupts, lock_fd: int
) -> None:
    constraints = _write_constraints(target.prefix, plan.constraints)
    env_changes: dict[str, str | None] = {}
    for step in plan.automatic_steps:
        action = step.action
        if guard.received:
            return
        if isinstance(action, SetEnv):
            env_changes[action.name] = action.value
            continue
        assert isinstance(action, (PipInstall, PipUninstall))
        use_constraints = constraints if needs_constraints(action) else None
        log(f"running: {plan.describe(step)}")
        outcome = run_pip(target.python, pip_args(action, use_constraints), timeout, guard, lock_fd)
        result.steps.append(outcome)
        if not outcome.ok:
            result.ok = False
            result.reason = f"step failed: {plan.describe(step)}: {outcome.detail}"
            return
    if env_changes and not guard.received:
        env = read_activation(target.prefix) | env_changes
        path = activation_path(target.prefix)
        write_atomic(path, render_activation(path, env))
        log(f"wrote {path}")


def _indexes(plan: Plan) -> dict[str, str]:
    """Where packages come from: the plan's --index-url values and pip's index settings."""
    out = {
        k: v for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
    }
    urls = sorted(
        {
            s.action.index_url
            for s in plan.automatic_steps
            if isinstance(s.action, PipInstall) and s.action.index_url
        }
    )
    if urls:
        out["plan"] = " ".join(urls)
    return out


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


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
    removed: list[str] = field(default_factory=list)  # distributions gone again
    restored: list[str] = field(default_factory=list)  # ``name==version`` back in place
    steps: list[StepResult] = field(default_factory=list)  # pip commands (versions-only snapshots)
    remaining: list[str] = field(default_factory=list)  # differences left after the rollback
    files: Restored | None = None  # files renamed back / removed (snapshots with a stash)
    note: str = ""


def diff_distributions(before: dict[str, str], after: dict[str, str]) -> tuple[list[str], list[str]]:
    """(names added since ``before``, ``name==version`` pins that must be reinstalled)."""
    b = {canonicalize_name(k): (k, v) for k, v in before.items()}
    a = {canonicalize_name(k): (k, v) for k, v in after.items()}
    added = sorted(a[k][0] for k in a.keys() - b.keys())
    changed = sorted(f"{b[k][0]}=={b[k][1]}" for k in b if k not in a or a[k][1] != b[k][1])
    return added, changed


def rollback(snap: Snapshot, timeout: float = PIP_TIMEOUT_S, log: Log = lambda _msg: None) -> RollbackResult:
    """Return the interpreter to the snapshot: its files renamed back from the stash (or, for a
    snapshot of versions only, new distributions removed and old versions reinstalled), then verify.

    Takes the prefix's lock (already held during ``apply_plan``); refuses, before any change, a
    rollback that would remove pip or setuptools.
    """
    target = inspect_target(snap.python)
    with locked(target.prefix, 0.0, log):
        if snap.state == "preparing":
            discard(snap)
            return RollbackResult(
                True, note=f"the fix that wrote {snap.path.name} was stopped before any change"
            )
        added, changed = diff_distributions(snap.distributions, target.distributions)
        result = RollbackResult(ok=True, removed=added, restored=changed)
        if snap.schema >= 2:
            layout = read_layout(snap.python)
            _refuse_installer_removal(snap, installer_removals(snap, layout))
            try:
                result.files = restore_files(snap, layout)
            except OSError as exc:
                result.ok, result.note = False, f"restoring stopped at {exc.filename}: {exc.strerror or exc}"
                return result
            log(f"restored {result.files.replaced} files from {snap.stash}, removed {result.files.removed}")
        else:
            _refuse_installer_removal(snap, [n for n in added if canonicalize_name(n) in INSTALLERS])
            _reinstall(snap, added, changed, result, timeout, log)
        path = activation_path(target.prefix)
        if snap.activation is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, snap.activation)
        after = inspect_target(snap.python).distributions
    left_added, left_changed = diff_distributions(snap.distributions, after)
    result.remaining = [f"+{n}" for n in left_added] + [f"~{p}" for p in left_changed]
    result.ok = not result.remaining and all(s.ok for s in result.steps)
    return result


def _refuse_installer_removal(snap: Snapshot, installers: list[str]) -> None:
    if installers:
        raise ApplyError(
            f"{snap.path}: rollback refused: it would remove {', '.join(installers)}, which the snapshot "
            f"does not hold (the environment would be left without its installer)"
        )


def _reinstall(
    snap: Snapshot, added: list[str], changed: list[str], result: RollbackResult, timeout: float, log: Log
) -> None:
    """A snapshot of versions only (written by envdoctor before stashes): pip does the restoring."""
    if added:
        log(f"uninstalling {', '.join(added)}")
        result.steps.append(run_pip(snap.python, ["uninstall", "-y", *added], timeout))
    if changed:
        log(f"reinstalling {', '.join(changed)}")
        result.steps.append(run_pip(snap.python, ["install", "--no-input", "--no-deps", *changed], timeout))


def render_result(result: ApplyResult) -> str:
    """What happened, one line per step, then the verdict (applied / rolled back / refused)."""
    lines = [f"  REFUSED: {r}" for r in result.refused]
    snap = result.snapshot  # every applied or rolled back plan has one
    for s in result.steps:
        lines.append(f"  {'ok  ' if s.ok else 'FAIL'} {s.seconds:6.1f}s  {s.command}")
        if s.detail:
            lines.append(f"        {s.detail}")
    if result.rolled_back and result.rollback is not None and snap is not None:
        rb = result.rollback
        state = "restored exactly" if rb.ok else f"NOT fully restored ({', '.join(rb.remaining) or rb.note})"
        lines.append(f"Rolled back ({result.reason}): environment {state} from {snap.path}.")
        if rb.files is not None:
            lines.append(
                f"  {rb.files.replaced} files renamed back from the stash, {rb.files.removed} removed"
            )
        if rb.removed or rb.restored:
            lines.append(
                f"  removed {', '.join(rb.removed) or '-'}; restored {', '.join(rb.restored) or '-'}"
            )
        if not rb.ok:
            lines.append(f"  Run again: envdoctor fix --rollback --python {snap.python}")
    elif result.ok and snap is not None:
        lines.append(
            f"Applied. Errors before: {result.errors_before}, after: {result.errors_after}. "
            f"Undo with: envdoctor fix --rollback --python {snap.python}"
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
        "interrupted": result.interrupted,
        "rollback": None if rb is None else rollback_dict(rb),
    }


def rollback_dict(rb: RollbackResult) -> dict:
    return {
        "ok": rb.ok,
        "removed": rb.removed,
        "restored": rb.restored,
        "remaining": rb.remaining,
        "files": None if rb.files is None else vars(rb.files),
        "note": rb.note,
    }
