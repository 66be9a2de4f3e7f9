"""Probing other interpreters (``--python``): real venvs, planted torch packages, broken targets."""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import pytest
from probes_helpers import plant_torch, site_packages

from envdoctor.probes import ProbeTargetError, collect, target

PYENV = Path.home() / ".pyenv" / "versions"


def _pyenv_python(prefix: str) -> Path | None:
    found = sorted(PYENV.glob(f"{prefix}*/bin/python")) if PYENV.is_dir() else []
    return found[0] if found else None


def test_bare_venv_has_no_torch_and_no_packages(venv_factory) -> None:
    python = venv_factory("bare")
    facts = collect(python=str(python))
    assert facts.probe_errors == {}
    assert facts.torch.status == "missing"
    assert facts.torch.error == "ModuleNotFoundError: No module named 'torch'"
    assert facts.python.env_kind == "venv"
    assert facts.python.prefix == str(python.parent.parent)
    assert facts.python.externally_managed is False
    assert facts.python.conda_packages == {}
    assert facts.packages.all == {}
    assert facts.packages.torch_installs == [] and facts.packages.torch_build is None
    assert facts.packages.unmet == []


def test_uv_venv_is_recognised(venv_factory) -> None:
    python = venv_factory("uv-made")
    cfg = python.parent.parent / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "uv = 0.5.11\n")
    assert collect(python=str(python), quick=True).python.env_kind == "uv"


@pytest.mark.skipif(not Path("/usr/lib/python3.11/EXTERNALLY-MANAGED").exists(), reason="no Debian python3")
def test_debian_python_is_externally_managed() -> None:
    facts = collect(python="/usr/bin/python3.11", quick=True)
    assert facts.python.env_kind == "system"
    assert facts.python.externally_managed is True


def test_torch_raising_on_import_is_import_error(venv_factory) -> None:
    python = venv_factory("torch-raises")
    plant_torch(
        python, "raise RuntimeError('libcudnn.so.9: cannot open shared object file\\nplanted failure')"
    )
    facts = collect(python=str(python))
    assert facts.torch.status == "import-error"
    assert facts.torch.error == "RuntimeError: planted failure"
    # read without importing: the planted version.py, and a torch directory with no metadata
    assert facts.packages.torch_build == {
        "version": "9.9.9+planted",
        "cuda": "12.4",
        "hip": None,
        "git_version": None,
    }
    [install] = facts.packages.torch_installs
    assert (install.version, install.has_metadata) == ("9.9.9+planted", False)


def test_torch_missing_dependency_is_import_error_not_missing(venv_factory) -> None:
    python = venv_factory("torch-bad-dependency")
    plant_torch(python, "import no_such_dependency_xyz\n")
    facts = collect(python=str(python))
    assert facts.torch.status == "import-error"
    assert "no_such_dependency_xyz" in facts.torch.error


@pytest.mark.parametrize(
    ("source", "signal_name"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "SIGSEGV"),
        ("import os\nos.abort()\n", "SIGABRT"),
    ],
)
def test_torch_killing_the_process_is_crashed(venv_factory, source, signal_name) -> None:
    python = venv_factory(f"torch-{signal_name}")
    plant_torch(python, "import sys\nsys.stderr.write('loading planted torch\\n')\n" + source)
    facts = collect(python=str(python))
    assert facts.torch.status == "crashed"
    assert facts.torch.error == f"killed by {signal_name}: loading planted torch"
    assert facts.python.version  # the other probes still report


def test_torch_import_hanging_is_timeout(venv_factory) -> None:
    python = venv_factory("torch-hangs")
    plant_torch(python, "import time\ntime.sleep(60)\n")
    started = time.monotonic()
    facts = collect(python=str(python), torch_timeout=1.5)
    assert time.monotonic() - started < 10
    assert facts.torch.status == "timeout"
    assert "1.5s" in facts.torch.error


def test_mixed_torch_installs_are_all_listed(venv_factory, tmp_path) -> None:
    python = venv_factory("torch-mixed")
    site = site_packages(python)
    plant_torch(python, "")
    info = site / "torch-2.5.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n\nbody\n")
    extra = tmp_path / "user-site"
    (extra / "torch").mkdir(parents=True)
    (extra / "torch" / "__init__.py").write_text("")
    (extra / "torch" / "version.py").write_text("__version__ = '2.4.0+cu121'\n")
    (site / "zz-extra.pth").write_text(f"{extra}\n")
    facts = collect(python=str(python), quick=True)
    installs = [(d.version, d.location, d.has_metadata) for d in facts.packages.torch_installs]
    assert installs == [("2.5.1", str(site), True), ("2.4.0+cu121", str(extra), False)]
    assert facts.packages.versions == {"torch": "2.5.1"}


def test_missing_python_path_is_a_target_error(tmp_path) -> None:
    with pytest.raises(ProbeTargetError, match=r"no such file"):
        collect(python=str(tmp_path / "nope" / "python"))


def test_directory_without_python_is_a_target_error(tmp_path) -> None:
    with pytest.raises(ProbeTargetError, match=r"directory without bin/python"):
        collect(python=str(tmp_path))


def test_venv_directory_is_accepted(venv_factory) -> None:
    python = venv_factory("bare")
    facts = collect(python=str(python.parent.parent), quick=True)
    assert facts.python.prefix == str(python.parent.parent)


def test_non_python_executable_is_a_target_error() -> None:
    with pytest.raises(ProbeTargetError, match=r"not a Python 3.8\+ interpreter"):
        collect(python="/bin/true", quick=True)


@pytest.mark.skipif(_pyenv_python("2.7") is None, reason="no Python 2.7 here")
def test_python2_is_a_target_error() -> None:
    with pytest.raises(ProbeTargetError, match=r"not a Python 3.8\+ interpreter"):
        collect(python=str(_pyenv_python("2.7")), quick=True)


@pytest.mark.parametrize("child", ["child_env.py", "child_torch.py"])
def test_child_sources_parse_as_python_3_8(child) -> None:
    source = (Path(target.__file__).parent / child).read_text()
    ast.parse(source, feature_version=(3, 8))


@pytest.mark.skipif(_pyenv_python("3.8") is None, reason="no Python 3.8 here")
def test_python_3_8_target_really_runs_both_children() -> None:
    facts = collect(python=str(_pyenv_python("3.8")))
    assert facts.python.version.startswith("3.8.")
    assert facts.torch.status in ("missing", "ok", "import-error")
    assert facts.probe_errors == {}


def test_child_never_reads_the_working_directory(venv_factory, tmp_path, monkeypatch) -> None:
    python = venv_factory("bare")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise SystemExit('imported from the cwd')\n")
    monkeypatch.chdir(tmp_path)
    assert os.getcwd() == str(tmp_path)
    facts = collect(python=str(python))
    assert facts.torch.status == "missing"


def test_this_interpreter_is_read_in_process_with_the_same_facts_as_a_child():
    from envdoctor.probes import _process

    in_process = target.probe(sys.executable, 10)
    done = _process.run_python(sys.executable, target.CHILD_SOURCE.read_text(encoding="utf-8"), 30)
    child = target.from_payload(done.payload())
    assert in_process.python == child.python
    assert in_process.packages.all == child.packages.all
    assert in_process.packages.unmet == child.packages.unmet
    assert in_process.nvidia_roots == child.nvidia_roots
