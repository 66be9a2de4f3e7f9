"""Undo a fix: return the target to a snapshot, then verify that nothing differs from it.

Takes the prefix's lock; touches the target's installed files (renamed back from the snapshot's
stash by :mod:`envdoctor.fix.transaction`, or, for an old snapshot of versions only, through pip)
and its activation file. Refuses, before any change, a rollback that would remove pip or setuptools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from envdoctor.fix.activation import restore_activation
from envdoctor.fix.installer import PIP_TIMEOUT_S, StepResult, run_pip
from envdoctor.fix.state import ApplyError, Log, locked
from envdoctor.fix.target import inspect_target
from envdoctor.fix.transaction import (
    INSTALLERS,
    Restored,
    Snapshot,
    discard,
    installer_removals,
    read_layout,
    restore_files,
)


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
        restore_activation(target.prefix, snap.activation)
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
