"""What makes ``fix --apply`` a transaction: snapshots written atomically and a stash of the installed
files that a rollback restores by rename.

Touches ``<prefix>/.envdoctor/snapshots/`` (snapshots, stashes) and, when restoring, the target's
installed files; runs the target interpreter only to list where those files are. Callers hold the
prefix's lock (:func:`envdoctor.fix.state.locked`).

The shape is pip's own uninstall (``req_uninstall.StashedUninstallPathSet``): files go to a stash on
the same file system and come back by rename, exact and offline. envdoctor cannot know in advance
every distribution pip will touch (a dependency may move), so it stashes them all, by *hard link*:
the environment stays intact while pip resolves and installs, no byte is copied, and pip (which
unlinks a file before writing its replacement) never writes into a stashed inode. The stash holds
every file under the prefix's site-packages plus every RECORD-listed file elsewhere in the prefix
(console scripts, headers); a rollback makes those paths exactly what they were: each stashed file
renamed back unless it is still the same inode, every other file there removed.

A snapshot is ``<prefix>/.envdoctor/snapshots/<id>.json`` (written through a temporary file, fsync,
rename) next to its stash ``<id>/``. It is written first in state ``preparing``, then ``ready`` once
the stash is complete; pip runs only after that. So after a SIGKILL at any point, ``fix --rollback``
either finds a ``preparing`` snapshot (nothing was changed: it is discarded) or a ready one to
restore. Only the newest :data:`KEEP` snapshots are kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from envdoctor.fix.state import ApplyError, Log, state_dir, write_atomic
from envdoctor.probes._process import run_python

SCHEMA = 2  # 1: versions only (reinstalled by version on rollback); 2: with a stash of the files
KEEP = 3  # snapshots (and their stashes) kept per prefix; older ones are pruned
INSTALLERS = ("pip", "setuptools")  # a rollback never removes these
QUERY_TIMEOUT_S = 120.0


# --- what the stash covers ---------------------------------------------------------------------

_LAYOUT_SRC = """
import json, os, sys, sysconfig
from importlib import metadata
prefix = os.path.realpath(sys.prefix)
inside = lambda p: p == prefix or p.startswith(prefix + os.sep)
roots = sorted({os.path.realpath(sysconfig.get_path(k)) for k in ("purelib", "platlib")})
roots = [r for r in roots if inside(r)]
outside, provenance = set(), {}
for d in metadata.distributions():
    base = os.path.realpath(str(d.locate_file("")))
    if base not in roots:
        continue
    for f in d.files or ():
        p = os.path.normpath(os.path.join(base, str(f)))
        if inside(p) and not any(p.startswith(r + os.sep) for r in roots):
            outside.add(os.path.relpath(p, prefix))
    direct = d.read_text("direct_url.json")
    provenance[d.metadata["Name"] or "?"] = {"version": d.version, "installer": (d.read_text("INSTALLER") or "").strip(),
                                              "direct_url": json.loads(direct) if direct else None}
print(json.dumps({"prefix": prefix, "roots": [os.path.relpath(r, prefix) for r in roots],
                  "outside": sorted(outside), "provenance": provenance}))
"""


@dataclass
class Layout:
    """Where the target's installed files live, relative to its (real) prefix."""

    prefix: str
    roots: list[str]  # site-packages folders inside the prefix
    outside: list[str]  # RECORD-listed files elsewhere in the prefix (bin/, include/, share/)
    provenance: dict[str, dict]  # name -> version, INSTALLER, direct_url.json


def read_layout(python: str) -> Layout:
    done = run_python(python, _LAYOUT_SRC, timeout=QUERY_TIMEOUT_S)
    if done.timed_out or done.returncode != 0:
        raise ApplyError(f"{python}: cannot list its installed files ({done.stderr_tail() or 'timed out'})")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Layout(data["prefix"], data["roots"], data["outside"], data["provenance"])


def installed_files(layout: Layout) -> set[str]:
    """Every file under the site-packages roots and the RECORD-listed files elsewhere (relative paths)."""
    found = {rel for rel in layout.outside if os.path.lexists(os.path.join(layout.prefix, rel))}
    for root in layout.roots:
        for folder, dirs, files in os.walk(os.path.join(layout.prefix, root)):
            rel_folder = os.path.relpath(folder, layout.prefix)
            found.update(os.path.join(rel_folder, name) for name in files)
            # a symlink to a folder is an entry of its own, restored as such (never walked into)
            found.update(os.path.join(rel_folder, d) for d in dirs if os.path.islink(os.path.join(folder, d)))
    return found


# --- snapshots -------------------------------------------------------------------------------


@dataclass
class Snapshot:
    path: Path  # <id>.json; its stash is the folder <id>/ beside it
    python: str
    created: str
    distributions: dict[str, str]  # name -> version
    activation: str | None  # the activation file's text, None if there was none
    state: str = "ready"  # preparing (pip has not run; nothing to undo) or ready
    schema: int = SCHEMA
    prefix: str = ""  # the real prefix the stash's paths are relative to
    files: list[str] = field(default_factory=list)  # stashed, relative to prefix
    roots: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def stash(self) -> Path:
        return self.path.with_suffix("")

    def to_dict(self) -> dict:
        return {
            "schema": self.schema,
            "state": self.state,
            "python": self.python,
            "prefix": self.prefix,
            "created": self.created,
            "distributions": self.distributions,
            "activation": self.activation,
            "roots": self.roots,
            "files": self.files,
            "provenance": self.provenance,
        }


def snapshot_dir(prefix: str) -> Path:
    return state_dir(prefix) / "snapshots"


def _save(snap: Snapshot) -> None:
    write_atomic(snap.path, json.dumps(snap.to_dict(), indent=1, sort_keys=True) + "\n")


def take_snapshot(
    python: str,
    distributions: dict[str, str],
    activation: str | None,
    indexes: dict[str, str],
    log: Log = lambda _m: None,
) -> Snapshot:
    """Stash the installed files by hard link and record versions, provenance and the activation file.

    Must be called under the prefix's lock. Raises ApplyError (nothing changed, no partial snapshot
    left behind) when the state folder cannot be written: a full disk, a read-only prefix.
    """
    layout = read_layout(python)
    now = datetime.now(timezone.utc)
    folder = snapshot_dir(layout.prefix)
    snap = Snapshot(
        folder / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}.json",
        python,
        now.isoformat(),
        dict(distributions),
        activation,
        state="preparing",
        prefix=layout.prefix,
        roots=layout.roots,
        provenance={"indexes": indexes, "distributions": layout.provenance},
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _save(snap)
        snap.files = sorted(installed_files(layout))
        _link_all(layout.prefix, str(snap.stash), snap.files)
        snap.state = "ready"
        _save(snap)
    except OSError as exc:
        discard(snap)
        where = exc.filename or folder
        raise ApplyError(f"cannot write the snapshot under {folder}: {where}: {_why(exc)}") from None
    pruned = prune(layout.prefix, keep=KEEP)
    if pruned:
        log(f"pruned {pruned} old snapshot(s) of {layout.prefix} (keeping the last {KEEP})")
    return snap


def _link_all(source: str, dest: str, files: list[str]) -> None:
    """Hard-link each relative path of ``source`` to the same path under ``dest`` (folders made once)."""
    made: set[str] = set()
    for rel in files:
        folder = os.path.dirname(rel)
        if folder not in made:
            os.makedirs(os.path.join(dest, folder), exist_ok=True)
            made.add(folder)
        os.link(os.path.join(source, rel), os.path.join(dest, rel), follow_symlinks=False)


def _why(exc: OSError) -> str:
    if exc.errno == errno.EXDEV:
        return "site-packages is on another file system than the prefix (no stash by link possible)"
    return exc.strerror or str(exc)


def discard(snap: Snapshot) -> None:
    """Remove a snapshot and its stash (the stash first: a snapshot file never outlives its stash)."""
    shutil.rmtree(snap.stash, ignore_errors=True)
    with contextlib.suppress(OSError):
        snap.path.unlink(missing_ok=True)


def prune(prefix: str, keep: int) -> int:
    """Remove all but the newest ``keep`` snapshots, and leftovers of interrupted writes."""
    folder = snapshot_dir(prefix)
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    snaps = sorted(folder.glob("*.json"))
    for orphan in folder.iterdir():  # a stash whose snapshot file is gone
        if orphan.is_dir() and not orphan.with_suffix(".json").exists():
            shutil.rmtree(orphan, ignore_errors=True)
    old = snaps[:-keep] if keep else snaps
    for path in old:
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
        path.unlink(missing_ok=True)
    return len(old)


def latest_snapshot(prefix: str) -> Snapshot | None:
    """The newest snapshot of this prefix (file names sort by time), validated; None if there is none."""
    files = sorted(snapshot_dir(prefix).glob("*.json"))
    return load_snapshot(files[-1]) if files else None


def load_snapshot(path: Path) -> Snapshot:
    """Read and validate a snapshot: ApplyError naming the file and the problem if it is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ApplyError(f"{path}: unreadable snapshot ({exc.strerror or exc})") from None
    except ValueError:
        raise ApplyError(
            f"{path}: truncated or corrupt snapshot (not JSON); remove it to use an older one"
        ) from None
    problem = _invalid(data)
    if problem:
        raise ApplyError(f"{path}: invalid snapshot ({problem}); remove it to use an older one")
    snap = Snapshot(
        path,
        data["python"],
        data["created"],
        dict(data["distributions"]),
        data["activation"],
        state=data.get("state", "ready"),
        schema=data.get("schema", 1),
        prefix=data.get("prefix", ""),
        files=list(data.get("files", [])),
        roots=list(data.get("roots", [])),
        provenance=data.get("provenance", {}),
    )
    if snap.schema >= 2 and snap.state == "ready":
        missing = next((f for f in snap.files if not os.path.lexists(snap.stash / f)), None)
        if missing is not None:
            raise ApplyError(f"{path}: its stash {snap.stash} lacks {missing}; the files cannot be restored")
    return snap


def _invalid(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not an object"
    types = {"python": str, "created": str, "distributions": dict}
    for key, kind in types.items():
        if not isinstance(data.get(key), kind):
            return f"{key} missing or not a {kind.__name__}"
    if not (data.get("activation") is None or isinstance(data["activation"], str)):
        return "activation is not text"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data["distributions"].items()):
        return "distributions are not name -> version"
    schema = data.get("schema", 1)
    if schema not in (1, SCHEMA):
        return f"unknown schema {schema!r}"
    if schema == SCHEMA:
        if data.get("state") not in ("preparing", "ready"):
            return f"unknown state {data.get('state')!r}"
        if not isinstance(data.get("prefix"), str) or not isinstance(data.get("files"), list):
            return "prefix or files missing"
        if any(not isinstance(f, str) or f.startswith("/") or ".." in Path(f).parts for f in data["files"]):
            return "a file path leaves the prefix"
    return None


# --- restoring -------------------------------------------------------------------------------


@dataclass
class Restored:
    replaced: int = 0  # files renamed back from the stash
    removed: int = 0  # files that were not there before


def installer_removals(snap: Snapshot, layout: Layout) -> list[str]:
    """Installers present now whose files the snapshot does not hold (a restore would delete them)."""
    held = {name.lower() for name in snap.distributions}
    return sorted(n for n in INSTALLERS if n in {k.lower() for k in layout.provenance} and n not in held)


def restore_files(snap: Snapshot, layout: Layout) -> Restored:
    """Make the stashed paths exactly the snapshot's files again; remove every file added since.

    Each file comes back by link + rename over the current path, so the stash itself stays whole
    and an interrupted restore can simply run again.
    """
    prefix = snap.prefix
    wanted = set(snap.files)
    done = Restored()
    for rel in snap.files:
        src, dest = snap.stash / rel, os.path.join(prefix, rel)
        if _same(src, dest):
            continue
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = os.path.join(os.path.dirname(dest), f".envdoctor-restore-{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.link(src, tmp, follow_symlinks=False)
        os.replace(tmp, dest)
        done.replaced += 1
    extra = sorted(installed_files(layout) - wanted, reverse=True)
    for rel in extra:
        path = os.path.join(prefix, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        done.removed += 1
    _remove_empty_folders(prefix, {os.path.dirname(rel) for rel in extra}, snap.roots)
    return done


def _same(a: Path, b: str) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _remove_empty_folders(prefix: str, folders: set[str], roots: list[str]) -> None:
    """Folders left empty by removed files go too (deepest first); never a site-packages root nor a
    folder of the prefix itself (a venv's empty ``include/``)."""
    keep = {os.path.normpath(r) for r in roots}
    candidates: set[str] = set()
    for folder in folders:
        while os.sep in folder and folder not in keep and folder not in candidates:
            candidates.add(folder)
            folder = os.path.dirname(folder)
    for folder in sorted(candidates, key=lambda f: f.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it held something before the change
            os.rmdir(os.path.join(prefix, folder))
