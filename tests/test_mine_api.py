"""tools/mine_api.py: names read statically from wheels, first/last release per name, wheel tags.

Two releases of a small package are built here as real wheel files (zip archives with the layout pip
writes) and read the way the miner reads PyPI's; a second test mines two real releases of
``packaging`` from PyPI when the network allows it. The shipped index is then loaded the way a
diagnosis loads it.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import sys
import urllib.error
import zipfile
from pathlib import Path

import pytest

from envdoctor.knowledge import mined

TOOL = Path(__file__).resolve().parents[1] / "tools" / "mine_api.py"


def _tool():
    spec = importlib.util.spec_from_file_location("mine_api", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mine_api"] = module
    spec.loader.exec_module(module)
    return module


def _wheel(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("tiny-1.0.dist-info/METADATA", "Name: tiny\n")
    return buf.getvalue()


V1 = {
    "tiny/__init__.py": "from ._core import *\nfrom . import sub\n__all__ = ['Thing']\nOLD_CONST = 1\n",
    "tiny/_core.py": "def helper():\n    pass\nclass Thing:\n    def run(self):\n        pass\n",
    "tiny/sub.py": "def old_api():\n    pass\n",
    "tiny/tests/test_x.py": "def test_hidden():\n    pass\n",
}
V2 = {
    "tiny/__init__.py": (
        "from ._core import *\nfrom . import sub, compiler\n"
        "_import_structure = {'models': ['LazyModel']}\n"
        "try:\n    import fast\nexcept ImportError:\n    fast = None\n"
    ),
    "tiny/_core.py": (
        "def helper():\n    pass\nclass Thing:\n    def run(self):\n        pass\n"
        "    def stance(self):\n        self.mode = 1\n"
    ),
    "tiny/sub.py": "def new_api():\n    pass\n",
    "tiny/compiler/__init__.py": "def set_stance():\n    pass\n",
}


def test_read_wheel_names_public_api_statically():
    tool = _tool()
    names = tool.read_wheel(_wheel(V2), "tiny")
    # star import from a private module, submodules as attributes, lazy-import tables, try/except imports
    assert {
        "tiny.helper",
        "tiny.Thing",
        "tiny.compiler",
        "tiny.compiler.set_stance",
        "tiny.LazyModel",
    } <= names
    assert {"tiny.fast", "tiny.sub.new_api"} <= names
    # members of a class defined in a private module, listed where a public module re-exports it;
    # attributes assigned outside the constructor are not members
    assert {"tiny.Thing.run", "tiny.Thing.stance"} <= names and "tiny.Thing.mode" not in names
    assert not any(n.startswith("tiny._core") for n in names)  # private modules are read, not listed
    assert not any(".tests" in n for n in names)


def test_line_scanner_reads_what_the_parser_reads():
    tool = _tool()
    source = (
        '"""Docstring.\n\nclass NotAClass:\n"""\n'
        "from .sub import (\n    alpha,\n    beta as gamma,\n)\nimport os.path\n"
        "try:\n    from fast import speedy\nexcept ImportError:\n    speedy = None\n"
        "if True:\n    def guarded():\n        pass\n"
        "X, Y = 1, 2\n__all__ = ['Model', 'X']\n"
        "@decorator\nclass Model(Base):\n    kind: str = 'm'\n"
        "    def __init__(self):\n        self.layers = []\n        local = 1\n"
        "    def forward(self, x):\n        def inner():\n            pass\n        return x\n"
        "def helper():\n    import json\n    return json\n"
    )
    files = {
        "tiny/__init__.py": "from .mod import *\n",
        "tiny/mod.py": source,
        "tiny/sub.py": "alpha = beta = 1\n",
    }
    parsed, scanned = (
        tool.read_wheel(_wheel(files), "tiny"),
        tool.read_wheel(_wheel(files), "tiny", scan=True),
    )
    assert parsed == scanned
    assert {"tiny.mod.gamma", "tiny.mod.speedy", "tiny.mod.guarded", "tiny.mod.Y", "tiny.os"} - {
        "tiny.os"
    } <= scanned
    assert {"tiny.mod.Model.kind", "tiny.mod.Model.layers", "tiny.mod.Model.forward"} <= scanned
    assert not {"tiny.mod.NotAClass", "tiny.mod.inner", "tiny.mod.json", "tiny.mod.Model.local"} & scanned


def test_two_releases_give_first_and_last_release_of_each_name(tmp_path, monkeypatch):
    tool = _tool()
    per_version = [tool.read_wheel(_wheel(V1), "tiny"), tool.read_wheel(_wheel(V2), "tiny")]
    entry = {"versions": ["1.0.0", "1.1.0"], "names": tool.compact(tool.interval_index(per_version))}
    index = {"tiny": tool.compact_json(entry)}  # one JSON text per distribution, as the tool writes
    path = tmp_path / "api_index.json.gz"
    path.write_bytes(gzip.compress(json.dumps(index).encode()))
    monkeypatch.setattr(mined, "API_INDEX", path)
    monkeypatch.setitem(mined.DISTRIBUTIONS, "tiny", "tiny")
    mined.api_index.cache_clear()
    try:
        added = mined.name_history("tiny.compiler.set_stance")
        assert (added.first, added.last, added.removed_in()) == ("1.1.0", "1.1.0", None)
        removed = mined.name_history("tiny.sub.old_api")
        assert (removed.first, removed.last, removed.removed_in()) == ("1.0.0", "1.0.0", "1.1.0")
        assert removed.has("1.0.3") is True and removed.has("1.1.0") is False and removed.has("2.0") is None
        assert mined.name_history("tiny.nothing_like_it") is None
    finally:
        mined.api_index.cache_clear()


def test_minor_releases_take_the_first_final_release_of_each_minor():
    tool = _tool()
    wheel = [{"filename": "x-1-py3-none-any.whl", "size": 1}]
    releases = {
        "1.0.0": wheel,
        "1.0.1": wheel,
        "1.1.0rc1": wheel,
        "1.1.2": wheel,
        "1.2.0": [{"filename": "x-1.2.0.tar.gz", "size": 1}],
        "0.9.0": wheel,
    }
    assert tool.minor_releases(releases, "1.0", None) == ["1.0.0", "1.1.2"]


def test_release_tags_read_platforms_per_python(monkeypatch):
    tool = _tool()
    files = [
        {"filename": "torch-2.5.1-cp312-cp312-manylinux_2_28_x86_64.whl"},
        {"filename": "torch-2.5.1-cp311-none-macosx_11_0_arm64.whl"},
        {"filename": "torch-2.5.1-cp311-cp311-win_amd64.whl"},
        {"filename": "torch-2.5.1-cp313-cp313-win_amd64.whl", "yanked": True},
        {"filename": "vllm-0.6.0-cp38-abi3-manylinux1_x86_64.whl"},
    ]
    tags = tool.release_tags({"2.5.1": files, "2.6.0rc1": files})
    assert tags == {
        "2.5.1": {
            "cp311": ["macosx_arm64", "win_amd64"],
            "cp312": ["manylinux_x86_64"],
            "cp38-abi3": ["manylinux1_x86_64"],
        }
    }
    monkeypatch.setattr(mined, "wheel_tags", lambda: {"torch": tags})
    assert sorted(mined.wheel_pythons("torch", "2.5.1", "windows")) == ["cp311"]
    assert sorted(mined.wheel_pythons("torch", "2.5.1")) == ["cp311", "cp312", "cp38-abi3"]
    assert mined.supports(["cp38-abi3"], "cp311") and not mined.supports(["cp310", "cp311"], "cp312")
    assert mined.releases_with_python("torch", "cp312", "linux") == ["2.5.1"]
    assert mined.releases_with_python("torch", "cp312", "windows") == []


def test_release_requires_python_is_kept_where_the_wheels_agree_on_it():
    tool = _tool()
    wheel = "vllm-{v}-cp38-abi3-manylinux1_x86_64.whl"
    releases = {
        "0.10.0": [
            {"filename": wheel.format(v="0.10.0"), "requires_python": "<3.13,>=3.9"},
            {"filename": "vllm-0.10.0.tar.gz", "requires_python": ">=3.8"},  # an sdist: not read
        ],
        "0.10.1": [
            {"filename": wheel.format(v="0.10.1"), "requires_python": "<3.13,>=3.9"},
            {"filename": "vllm-0.10.1-cp38-abi3-win_amd64.whl", "requires_python": ">=3.9"},
        ],
        "0.10.2": [{"filename": wheel.format(v="0.10.2"), "requires_python": "<3.14,>=3.9", "yanked": True}],
        "0.11.0rc1": [{"filename": wheel.format(v="0.11.0rc1"), "requires_python": "<3.14,>=3.9"}],
    }
    assert tool.release_requires_python(releases) == {"0.10.0": "<3.13,>=3.9"}


def test_mine_two_real_releases_of_packaging(tmp_path):
    """packaging 21.3 has LegacyVersion, 22.0 removed it; Version is in both (from PyPI)."""
    tool = _tool()
    try:
        releases = tool.pypi_json("packaging")["releases"]
        per_version = [
            tool.mine_release("packaging", "packaging", v, releases[v], tmp_path) for v in ("21.3", "22.0")
        ]
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"PyPI not reachable: {exc}")
    spans = tool.interval_index(per_version)
    assert spans["packaging.version.LegacyVersion"] == [0, 0]
    assert spans["packaging.version.Version"] == [0, 1]
    assert not list(tmp_path.glob("*.whl"))  # wheels are deleted once read


def test_shipped_index_covers_the_package_ranges():
    index = mined.api_index()
    assert index, "envdoctor/knowledge/api_index.json.gz is missing: run tools/mine_api.py"
    torch = index["torch"]["versions"]
    assert torch[0] == "2.0.0" and len(torch) >= 14
    transformers = index["transformers"]["versions"]
    assert transformers[0] == "4.26.0" and any(v.startswith("5.") for v in transformers)
    numpy = index["numpy"]["versions"]
    assert numpy[0] == "1.21.0" and any(v.startswith("2.") for v in numpy)
    assert {"accelerate", "peft", "torchvision", "diffusers", "huggingface-hub"} <= set(index)
    assert mined.name_history("torch.compiler").first == "2.1.0"
    assert mined.name_history("numpy.float_").removed_in() == "2.0.0"
    assert mined.wheel_pythons("torch", "1.13.1") is not None


def test_stub_of_a_compiled_module_gives_the_names_a_package_takes_from_it():
    """torch's dtypes live in the compiled ``torch._C``: only its ``.pyi`` stub tells the names that
    ``from torch._C import *`` brings; a stub beside a ``.py`` is not read in its place."""
    tool = _tool()
    files = {
        "tiny/__init__.py": "from tiny._C import *\nfrom tiny.ops import fast\n",
        "tiny/_C/__init__.pyi": "class dtype: ...\nfloat8_e8m0fnu: dtype = ...\ndef _private() -> None: ...\n",
        "tiny/ops.py": "def fast():\n    pass\n",
        "tiny/ops.pyi": "def fast() -> None: ...\ndef only_in_stub() -> None: ...\n",
    }
    names = tool.read_wheel(_wheel(files), "tiny")
    assert {"tiny.float8_e8m0fnu", "tiny.dtype", "tiny.ops.fast"} <= names
    assert "tiny._private" not in names and "tiny.ops.only_in_stub" not in names


def test_torch_takes_the_functions_of_its_compiled_variable_functions(monkeypatch):
    """torch copies ``torch._C._VariableFunctions`` into its namespace in a loop (COPIED_FROM)."""
    tool = _tool()
    files = {
        "torch/__init__.py": "from torch._C import *\n",
        "torch/_C/__init__.pyi": "float8_e4m3fn: dtype = ...\n",
        "torch/_C/_VariableFunctions.pyi": "def float_power(input, exponent): ...\n",
    }
    names = tool.read_wheel(_wheel(files), "torch")
    assert {"torch.float8_e4m3fn", "torch.float_power"} <= names


def test_mining_one_package_keeps_the_other_packages_of_the_index(tmp_path, monkeypatch):
    tool = _tool()
    (tmp_path / "api_index.json.gz").write_bytes(
        gzip.compress(json.dumps({"numpy": {"versions": ["1.0"], "names": {}}}).encode())
    )
    monkeypatch.setattr(tool, "mine_api", lambda packages, cache, limit: {"tiny": {"versions": ["2.0"]}})
    assert (
        tool.main(["--out", str(tmp_path), "--cache", str(tmp_path), "--packages", "tiny", "--skip-wheels"])
        == 0
    )
    index = json.loads(gzip.decompress((tmp_path / "api_index.json.gz").read_bytes()))
    assert set(index) == {"numpy", "tiny"}


def test_listing_one_package_keeps_the_other_packages_wheel_tags(tmp_path, monkeypatch):
    tool = _tool()
    for name in ("wheel_tags.json.gz", "requires_python.json.gz"):
        (tmp_path / name).write_bytes(gzip.compress(json.dumps({"torch": {"2.5.1": "kept"}}).encode()))
    files = [{"filename": "bitsandbytes-0.43.0-py3-none-win_amd64.whl", "requires_python": ">=3.8"}]
    monkeypatch.setattr(tool, "pypi_json", lambda package: {"releases": {"0.43.0": files}})
    argv = [
        "--out",
        str(tmp_path),
        "--cache",
        str(tmp_path),
        "--packages",
        "--wheel-packages",
        "bitsandbytes",
    ]
    assert tool.main(argv) == 0
    tags = json.loads(gzip.decompress((tmp_path / "wheel_tags.json.gz").read_bytes()))
    assert tags == {"torch": {"2.5.1": "kept"}, "bitsandbytes": {"0.43.0": {"py3": ["win_amd64"]}}}
    assert set(json.loads(gzip.decompress((tmp_path / "requires_python.json.gz").read_bytes()))) == {
        "torch",
        "bitsandbytes",
    }


def test_shipped_wheel_tags_know_when_bitsandbytes_gained_windows_and_aarch64_builds():
    assert mined.wheel_platforms("bitsandbytes", "0.42.0") == {"any"}
    assert mined.first_release_with_platform("bitsandbytes", "_amd64") == "0.43.0"
    assert mined.first_release_with_platform("bitsandbytes", "_aarch64") == "0.46.0"
