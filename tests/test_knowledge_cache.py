"""The knowledge tables' JSON cache: same rows as the YAML, no PyYAML on a hit, never in the way."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from probes_helpers import repo_env

import envdoctor.knowledge as knowledge
from envdoctor.knowledge import KnowledgeError, cache_file, load_all, load_table

SHIPPED = Path(knowledge.__file__).parent
NAMES = sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def reset() -> None:
    """Forget the tables this process has loaded, so that the next load reads cache or YAML."""
    load_table.cache_clear()
    knowledge._all_tables_once.cache_clear()


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """Every test here has its own cache directory (and never writes to the real ~/.cache)."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    reset()
    yield cache
    reset()


@pytest.fixture
def tables_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped tables that the loader reads instead, free to be changed."""
    copy = tmp_path / "tables"
    copy.mkdir()
    for name in NAMES:
        shutil.copy2(SHIPPED / f"{name}.yaml", copy / f"{name}.yaml")
    monkeypatch.setattr(knowledge, "TABLES_DIR", copy)
    return copy


def refuse_yaml(monkeypatch) -> None:
    """Make any YAML parse fail the test: what loads now must come from the cache."""

    def parse(name: str) -> None:
        raise AssertionError(f"{name}.yaml was parsed although the cache should have answered")

    monkeypatch.setattr(knowledge, "_parse_table", parse)


def test_cached_rows_equal_the_yaml_rows_for_every_table(monkeypatch) -> None:
    from_yaml = {name: knowledge._parse_table(name) for name in NAMES}
    load_all()  # a miss: parses and writes the cache
    assert {name: load_table(name) for name in NAMES} == from_yaml
    assert cache_file().is_file()
    reset()
    refuse_yaml(monkeypatch)
    from_cache = {name: load_table(name) for name in NAMES}
    assert from_cache == from_yaml
    assert all(isinstance(rows, tuple) and rows for rows in from_cache.values())


def test_a_cache_hit_never_imports_yaml(own_cache) -> None:
    code = (
        "import sys; from envdoctor.knowledge import load_all, load_table, cache_file\n"
        "load_all()\n"
        "print('yaml' in sys.modules, len(load_table('gpus')) > 0, cache_file().is_file())\n"
    )
    env = repo_env({"XDG_CACHE_HOME": str(own_cache)})
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [["True", "True", "True"], ["False", "True", "True"]], [
        r.stderr for r in runs
    ]


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "not-an-object", "row-without-source", "table-missing"],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(damage, monkeypatch) -> None:
    load_all()
    path = cache_file()
    good = json.loads(path.read_text())
    text = path.read_text()
    if damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "not-an-object":
        path.write_text("[1, 2, 3]")
    elif damage == "row-without-source":
        bad = json.loads(text)
        del bad["tables"]["gpus"][0]["source"]
        path.write_text(json.dumps(bad))
    else:
        bad = json.loads(text)
        del bad["tables"]["gpus"]
        path.write_text(json.dumps(bad))
    reset()
    assert load_table("gpus") == knowledge._parse_table("gpus")
    assert json.loads(path.read_text()) == good
    reset()
    refuse_yaml(monkeypatch)
    load_all()


def test_a_changed_table_invalidates_the_cache(tables_copy, monkeypatch) -> None:
    fp8 = tables_copy / "fp8.yaml"
    before = load_table("fp8")
    assert all(r.get("key") != "probe-marker" for r in before)
    stat = fp8.stat()
    fp8.write_text(
        fp8.read_text()
        + "  - {key: probe-marker, value: x, source: 'https://example.org/', status: unverified}\n"
    )
    os.utime(fp8, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the size tells
    reset()
    after = load_table("fp8")
    assert after[:-1] == before and after[-1]["key"] == "probe-marker"
    reset()
    refuse_yaml(monkeypatch)
    assert load_table("fp8") == after


def test_same_size_rewrite_with_a_new_mtime_invalidates_the_cache(tables_copy) -> None:
    fp8 = tables_copy / "fp8.yaml"
    fp8.write_text(
        fp8.read_text()
        + "  - {key: marker-a, value: x, source: 'https://example.org/', status: unverified}\n"
    )
    assert load_table("fp8")[-1]["key"] == "marker-a"
    stat = fp8.stat()
    fp8.write_text(fp8.read_text().replace("marker-a", "marker-b"))
    os.utime(fp8, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert fp8.stat().st_size == stat.st_size
    reset()
    assert load_table("fp8")[-1]["key"] == "marker-b"


def test_each_installation_has_its_own_cache_file(tables_copy, monkeypatch) -> None:
    copy_file = cache_file()
    monkeypatch.setattr(knowledge, "TABLES_DIR", SHIPPED)
    assert cache_file() != copy_file
    assert cache_file().parent == copy_file.parent


def test_an_unwritable_cache_dir_still_loads(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # mkdir fails even for root
    load_all()
    assert load_table("gpus") == knowledge._parse_table("gpus")
    assert blocker.read_text() == "not a directory"


def test_a_relative_xdg_cache_home_falls_back_to_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_file().parent == tmp_path / ".cache" / "envdoctor"


def test_a_malformed_table_names_its_file_and_is_never_cached(tables_copy) -> None:
    (tables_copy / "fp8.yaml").write_text("rows:\n  - {key: x, value: y, status: verified}\n")
    with pytest.raises(KnowledgeError, match=r"^fp8\.yaml: row 0: source: not a URL$"):
        load_table("fp8")
    assert load_table("gpus")  # the other tables still load
    with pytest.raises(KnowledgeError, match=r"^fp8\.yaml: row 0: source: not a URL$"):
        load_all()
    assert not cache_file().exists()


def test_rows_json_cannot_give_back_are_never_cached(tables_copy) -> None:
    (tables_copy / "dated.yaml").write_text(
        "rows:\n  - {released: 2024-06-01, source: 'https://example.org/', status: verified}\n"
    )
    assert load_table("dated")[0]["released"] == datetime.date(2024, 6, 1)
    assert not cache_file().exists()
