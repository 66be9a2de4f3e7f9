"""Snapshots that cannot be written or trusted: one-line errors (exit 2), never a traceback, never
a rollback that removes the installer; old snapshots pruned; a snapshot interrupted before pip
ran is recognised as "nothing to undo"."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fix_faults import REPO, envdoctor, plant_conflict, record_state

from envdoctor.fix import transaction
from envdoctor.fix.target import inspect_target


def _snapshots(python: Path) -> Path:
    return python.parent.parent / ".envdoctor" / "snapshots"


def _take(python: Path, log=lambda _m: None) -> transaction.Snapshot:
    installed = inspect_target(str(python)).distributions
    return transaction.take_snapshot(str(python), installed, None, {}, log)


def test_truncated_snapshot_is_a_one_line_error(fresh_venv, isolated_env):
    py = fresh_venv()
    _take(py)
    path = next(_snapshots(py).glob("*.json"))
    path.write_text(path.read_text()[:40])
    done = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert done.returncode == 2
    assert done.stderr == (
        f"envdoctor: error: {path}: truncated or corrupt snapshot (not JSON); remove it to use an older one\n"
    )


def test_snapshot_whose_stash_lost_a_file_is_refused(fresh_venv, isolated_env):
    py = fresh_venv()
    snap = _take(py)
    victim = next(p for p in snap.stash.rglob("*.py"))
    victim.unlink()
    done = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert done.returncode == 2 and "its stash" in done.stderr and "cannot be restored" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_unwritable_snapshot_folder_is_a_one_line_error_and_nothing_changes(
    fresh_venv, isolated_env, fix_wheels
):
    py = fresh_venv()
    plant_conflict(py, isolated_env, fix_wheels)
    start = record_state(py)
    state = py.parent.parent / ".envdoctor"
    state.mkdir()
    (state / "snapshots").write_text("a file where the folder should be\n")  # root ignores chmod
    done = envdoctor("fix", "--apply", "--quick", "--python", str(py), env=isolated_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"envdoctor: error: cannot write the snapshot under {state / 'snapshots'}")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert record_state(py) == start


def test_rollback_that_would_remove_pip_is_refused(fresh_venv, isolated_env):
    py = fresh_venv()
    folder = _snapshots(py)
    folder.mkdir(parents=True)
    # A snapshot of versions only (as older envdoctor wrote them) that lists nothing at all.
    old = folder / "20200101T000000000000Z.json"
    old.write_text(
        json.dumps({"python": str(py), "created": "2020", "distributions": {}, "activation": None})
    )
    done = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert done.returncode == 2 and "rollback refused: it would remove pip, setuptools" in done.stderr
    # A snapshot with a stash whose distribution list has lost pip.
    snap = transaction.take_snapshot(str(py), {"setuptools": "65.5.0"}, None, {})
    done = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert done.returncode == 2 and f"{snap.path}: rollback refused: it would remove pip" in done.stderr
    assert any(py.parent.parent.glob("lib/python*/site-packages/pip/__init__.py"))
    assert envdoctor("fix", "--rollback", "--python", "/nonexistent/python", env=isolated_env).returncode == 2


def test_only_the_newest_snapshots_are_kept_and_that_is_said(fresh_venv):
    py = fresh_venv()
    said: list[str] = []
    made = [_take(py, said.append) for _ in range(transaction.KEEP + 2)]
    kept = sorted(_snapshots(py).glob("*.json"))
    assert kept == [s.path for s in made[-transaction.KEEP :]]
    assert sorted(p for p in _snapshots(py).iterdir() if p.is_dir()) == [
        s.stash for s in made[-transaction.KEEP :]
    ]
    assert said[-1] == f"pruned 1 old snapshot(s) of {made[0].prefix} (keeping the last {transaction.KEEP})"


def test_snapshot_stopped_before_pip_ran_means_nothing_to_undo(fresh_venv, isolated_env):
    py = fresh_venv()
    snap = _take(py)
    data = json.loads(snap.path.read_text())
    snap.path.write_text(json.dumps(dict(data, state="preparing")))
    relative = os.path.relpath(py, REPO)  # envdoctor runs in REPO
    done = envdoctor("fix", "--rollback", "--python", relative, env=isolated_env)
    assert done.returncode == 0 and "nothing to roll back" in done.stdout, done.stdout + done.stderr
    assert not snap.path.exists() and not snap.stash.exists()


def test_rollback_stopped_half_way_says_incomplete_and_where(fresh_venv, isolated_env):
    """A restore that stops (here a file where a stashed folder must come back) never claims the
    environment is as it was: it names the path, exit 1; with the path cleared, it completes."""
    py = fresh_venv()
    start = record_state(py)
    _take(py)
    folder = next(py.parent.parent.glob("lib/python*/site-packages/_distutils_hack"))
    shutil.rmtree(folder)
    folder.write_text("a file where a folder must come back\n")
    done = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"rollback incomplete: restoring stopped at {folder}" in done.stdout
    assert "as it was" not in done.stdout and "Traceback" not in done.stderr
    folder.unlink()
    again = envdoctor("fix", "--rollback", "--python", str(py), env=isolated_env)
    assert again.returncode == 0 and "environment restored exactly" in again.stdout, (
        again.stdout + again.stderr
    )
    assert record_state(py) == start
