"""The compiled selected branch (reference_model/select_kernel.c): built once per source and machine,
and every way its build can fail leaves training on the PyTorch path with the reason said."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference_model import select_kernel

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch) -> Path:
    """An empty cache and no decision taken yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(select_kernel.SWITCH, raising=False)
    _forget()
    yield tmp_path / "cache" / "envdoctor"
    _forget()


def _forget() -> None:
    select_kernel._load.cache_clear()
    select_kernel._kernel.cache_clear()


def _trains() -> None:
    """A forward and backward of a PAM layer with a selected branch still runs."""
    from reference_model import PAMConfig, PAMTransformer

    model = PAMTransformer(PAMConfig(block_size=64, select_blocks=2, compress_block=4, window=8))
    idx = torch.randint(32, (1, 64), generator=torch.Generator().manual_seed(0))
    loss = model(idx, idx)[1]
    loss.backward()
    assert torch.isfinite(loss)


def test_built_once_and_served_for_fp32_and_fp64_on_cpu_only(fresh) -> None:
    assert select_kernel.functions(torch.float32, CPU) and select_kernel.functions(torch.float64, CPU)
    assert select_kernel.functions(torch.bfloat16, CPU) is None
    assert select_kernel.functions(torch.float32, torch.device("meta")) is None
    assert select_kernel.status() == "compiled C (fp32 and fp64 on CPU)"
    (built,) = fresh.glob("pam-select-*.so")
    _forget()
    select_kernel.functions(torch.float32, CPU)  # a second process loads the cached library
    assert list(fresh.glob("pam-select-*")) == [built]


@pytest.mark.parametrize(
    "setup,reason",
    [
        ("switch", "PAM_SELECT_KERNEL=0"),
        ("no compiler", "no C compiler"),
        ("compiler fails", "failed: "),
        ("compiler hangs", "TimeoutExpired"),
        ("read-only cache", "PermissionError"),
        ("corrupt library", "OSError"),
    ],
)
def test_a_failed_build_falls_back_to_pytorch_and_says_why(
    fresh, tmp_path, monkeypatch, setup, reason
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if setup == "switch":
        monkeypatch.setenv(select_kernel.SWITCH, "0")
    elif setup == "no compiler":
        monkeypatch.setenv("PATH", str(bin_dir))
        monkeypatch.delenv("CC", raising=False)
    elif setup in ("compiler fails", "compiler hangs"):
        cc = bin_dir / "cc"
        body = "echo 'select_kernel.c:1: error: no space left on device' >&2; exit 1"
        cc.write_text("#!/bin/sh\n" + (body if setup == "compiler fails" else "exec sleep 30") + "\n")
        cc.chmod(0o755)
        monkeypatch.setenv("CC", str(cc))
        monkeypatch.setattr(select_kernel, "BUILD_TIMEOUT_S", 1)
    elif setup == "read-only cache":
        if os.geteuid() == 0:
            monkeypatch.setattr(Path, "mkdir", _denied)
        else:
            fresh.parent.mkdir(parents=True)
            fresh.parent.chmod(0o500)
    else:  # a library cut short (a full disk when it was copied in, another machine's file)
        key = select_kernel._key(select_kernel.SOURCE.read_bytes())
        fresh.mkdir(parents=True)
        (fresh / f"pam-select-{key}.so").write_bytes(b"\x7fELF truncated")
    started = time.monotonic()
    assert select_kernel.functions(torch.float32, CPU) is None
    assert time.monotonic() - started < 10
    assert select_kernel.status().startswith("PyTorch operations (") and reason in select_kernel.status()
    _trains()


def _denied(self, *args, **kwargs):
    raise PermissionError(13, "Permission denied", str(self))


def test_a_build_killed_midway_leaves_nothing_in_the_way(fresh) -> None:
    """SIGKILL during a build leaves its temporary file; the next build removes an old one and the
    half-written file is never loaded (the library appears under its name only when complete)."""
    fresh.mkdir(parents=True)
    stale = fresh / "pam-select-0123456789abcdef.tmpxyz.so"
    stale.write_bytes(b"half")
    old = time.time() - 2 * select_kernel.BUILD_TIMEOUT_S
    os.utime(stale, (old, old))
    assert select_kernel.functions(torch.float32, CPU)
    assert not stale.exists()
    assert [p.name for p in fresh.iterdir() if ".tmp" in p.name] == []


def test_concurrent_first_builds_all_succeed(fresh) -> None:
    """Ranks of one torchrun job build at the same moment into one cache: each writes its own file and
    renames it, so every process loads a complete library."""
    code = (
        "import torch; from reference_model import select_kernel as s; "
        "assert s.functions(torch.float32, torch.device('cpu')), s.status(); print(s.status())"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(select_kernel.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert len(list(fresh.glob("pam-select-*.so"))) == 1
    assert [p.name for p in fresh.iterdir() if ".tmp" in p.name] == []


def test_tensors_the_c_code_cannot_read_are_refused_not_misread() -> None:
    """A float32 gradient buffer under float64 queries (or a strided one) would be written as the
    wrong type or at the wrong offsets: the call refuses before C sees it."""
    from reference_model import PAMConfig
    from reference_model import model as pam

    kernel = select_kernel.functions(torch.float64, CPU)
    assert kernel, select_kernel.status()
    B, H, T, D = 1, 2, 16, 4
    q, k, v = (torch.randn(B, H, T, D, dtype=torch.float64) for _ in range(3))
    null = torch.randn(H, D, dtype=torch.float64)
    chosen = torch.zeros(B, H, T, 1, dtype=torch.long)
    tables = (x.reshape(-1, D) for x in (k, v))
    cfg = PAMConfig(select_blocks=1, compress_block=4, window=4)
    branch = pam._CompiledSelectedBranch(kernel, 0, q, *tables, chosen, null, null, cfg)
    out = branch.forward()
    assert out.shape == q.shape and torch.isfinite(out).all()
    grads = [torch.zeros(B * H * T, D, dtype=torch.float64) for _ in range(2)]
    with pytest.raises(ValueError, match="dtype"):
        branch.backward(torch.ones_like(q), torch.zeros_like(q), *grads, torch.zeros(H, D), torch.zeros(H, D))
    with pytest.raises(ValueError, match="contiguous"):
        strided = torch.zeros(H, 2 * D, dtype=torch.float64)[:, ::2]
        branch.backward(torch.ones_like(q), torch.zeros_like(q), *grads, strided, strided)


def test_ctrl_c_during_the_build_stops_it_and_leaves_nothing(fresh, tmp_path) -> None:
    """Ctrl-C while the compiler runs: the interruption reaches the caller (training stops as on any
    Ctrl-C), the compiler is killed, and no temporary file stays in the cache."""
    cc = tmp_path / "cc"
    cc.write_text('#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 60\n')
    cc.chmod(0o755)
    code = "import torch; from reference_model import select_kernel as s; s.functions(torch.float32, torch.device('cpu'))"
    env = {**os.environ, "CC": str(cc), "PYTHONPATH": str(Path(select_kernel.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    pid_file = Path(f"{cc}.pid")
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    compiler = int(pid_file.read_text())
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    time.sleep(0.2)
    assert (
        not Path(f"/proc/{compiler}").exists() or "Z" in Path(f"/proc/{compiler}/stat").read_text().split()[2]
    )
    assert [p.name for p in fresh.iterdir() if ".tmp" in p.name] == []
