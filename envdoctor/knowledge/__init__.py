"""Compatibility knowledge as data: YAML tables shipped with the package, every row with a source.

Each table file holds ``rows:``; every row names its ``source`` (a URL) and a ``status``
(``verified``, ``secondary`` or ``unverified``) so that a wrong row can be traced and fixed.
Typed accessors live in the modules beside this one; this module only loads and validates.

``check`` reads every table, and importing PyYAML and parsing them costs more CPU than the rest of
a quick check's Python work. So the validated rows of all tables are kept as one JSON file in the
user's cache directory, valid for this envdoctor version and these exact table files (name,
mtime, size); any other state of the package parses the YAML again and rewrites the file.
"""

from __future__ import annotations

import _thread
import os
from functools import cache
from pathlib import Path
from typing import Any

from envdoctor.yamlio import Fields, load_rows, row_name

STATUSES = ("verified", "secondary", "unverified")
# Each table's own fields, (required, optional), besides source and status and the optional notes that
# any row may carry: a misspelt or missing field is an error naming the file, the row and the field.
ANY_ROW = ("source", "status", "quote", "also", "note", "checked")
TABLE_FIELDS: dict[str, tuple[str, str]] = {
    "arch_lists": ("torch variants arch_list", ""),
    "cuda_drivers": ("cuda", "min_driver toolkit_driver"),
    "cuda_libraries": ("family soname wheel", ""),
    "cuda_toolkit_archs": ("cuda min max", ""),
    "fp8": ("key value", ""),
    "gpu_drivers": ("arch branch capabilities first_cuda min_driver", ""),
    "gpu_memory": ("name match memory_gib", ""),
    "gpus": ("name match cc", ""),
    "host_compilers": ("cuda max_gcc", ""),
    "kernel_floors": ("package versions min_capability", ""),
    "model_shapes": ("name model hidden layers heads kv_heads ffn vocab mlp tied", ""),
    "torch_companions": ("package torch version", ""),
    "torch_floors": ("package torch versions", ""),
    "torch_releases": ("minor python cuda_variants", "latest released pypi_default_cuda"),
}

# The package is installed unpacked: the tables are plain files next to this module.
TABLES_DIR = Path(__file__).parent

Rows = tuple[dict[str, Any], ...]

_lock = _thread.allocate_lock()


class KnowledgeError(ValueError):
    """A shipped table is malformed: the message names the file, the row and the problem."""


@cache
def load_table(name: str) -> Rows:
    """Rows of ``envdoctor/knowledge/<name>.yaml``, validated to carry a source and a status."""
    rows = _all_tables().get(name)
    return rows if rows is not None else _parse_table(name)


def load_all() -> None:
    """Load every shipped table once (they are cached), e.g. while probes run."""
    for name, _, _ in _table_files():
        load_table(name)


def cache_file() -> Path:
    """The JSON cache for the tables of this installation (``$XDG_CACHE_HOME/envdoctor``).

    One file per envdoctor version and package directory, so that two installations sharing a
    home directory do not keep invalidating each other's cache.
    """
    import zlib

    from envdoctor import __version__

    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the XDG default
        base = os.path.join(os.path.expanduser("~"), ".cache")
    tag = f"{zlib.crc32(str(TABLES_DIR).encode()):08x}"
    return Path(base) / "envdoctor" / f"knowledge-{__version__}-{tag}.json"


def _table_files() -> list[tuple[str, int, int]]:
    """(name, st_mtime_ns, st_size) of every table file: the cache's validity key."""
    files = []
    with os.scandir(TABLES_DIR) as entries:
        for entry in entries:
            if entry.name.endswith(".yaml"):
                stat = entry.stat()
                files.append((entry.name[: -len(".yaml")], stat.st_mtime_ns, stat.st_size))
    return sorted(files)


def _all_tables() -> dict[str, Rows]:
    """Every table that loads cleanly, from the cache file or else from YAML (then cached).

    A malformed table is left out here, so that ``load_table`` raises its error when it is asked
    for; a cache is only written when every table loaded.
    """
    with _lock:
        return _all_tables_once()


@cache
def _all_tables_once() -> dict[str, Rows]:
    from envdoctor import __version__

    files = _table_files()
    key = [__version__, [list(f) for f in files]]
    path = cache_file()
    tables = _read_cache(path, key)
    if tables is not None:
        return tables
    tables = {}
    for name, _, _ in files:
        try:
            tables[name] = _parse_table(name)
        except KnowledgeError:
            continue
    if len(tables) == len(key[1]):
        _write_cache(path, key, tables)
    return tables


def _parse_table(name: str) -> Rows:
    filename = f"{name}.yaml"
    try:
        text = (TABLES_DIR / filename).read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"{filename}: cannot load ({exc})") from None
    rows = _validated(filename, load_rows(filename, text, "rows", KnowledgeError))
    schema = TABLE_FIELDS.get(name)
    if schema is not None:  # every shipped table has one (tests/test_yaml_rows.py)
        required, optional = schema[0].split(), schema[1].split()
        for i, row in enumerate(rows):
            check = Fields(row_name(filename, i, row), KnowledgeError)
            check.known(row, {*required, *optional, *ANY_ROW})
            check.require(row, required)
    return rows


def _validated(filename: str, rows: list[Any]) -> Rows:
    """The rows, each a mapping with a source URL and a status (also rows read back from the cache)."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise KnowledgeError(f"{row_name(filename, i, row)}: not a mapping")
        if not str(row.get("source", "")).startswith("http"):
            raise KnowledgeError(f"{row_name(filename, i, row)}: source: not a URL")
        if row.get("status") not in STATUSES:
            raise KnowledgeError(
                f"{row_name(filename, i, row)}: status: {row.get('status')!r} is not one of {STATUSES}"
            )
    return tuple(rows)


def _read_cache(path: Path, key: list[Any]) -> dict[str, Rows] | None:
    """The cached tables when ``path`` holds them for exactly ``key``; None when missing or unusable."""
    import json

    try:
        data = json.loads(path.read_bytes())
        if data["key"] != key:
            return None
        tables = data["tables"]
        if sorted(tables) != [name for name, _, _ in key[1]]:
            return None
        return {name: _validated(f"{name}.yaml", rows) for name, rows in tables.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # KnowledgeError is a ValueError
        return None


def _write_cache(path: Path, key: list[Any], tables: dict[str, Rows]) -> None:
    """Write the cache atomically; skipped when JSON cannot give the rows back exactly.

    YAML may hold what JSON cannot (dates, non-string keys, NaN), and a cache that changed rows
    would be worse than none. A read-only or full disk only costs the next run a parse.
    """
    import json

    try:
        text = json.dumps({"key": key, "tables": tables}, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    if json.loads(text)["tables"] != {name: list(rows) for name, rows in tables.items()}:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
