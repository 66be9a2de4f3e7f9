"""The machine: OS, kernel, glibc, CPU, memory, container, /dev/shm and allow-listed variables.

Touches: reads files under /proc, /etc and /run and the environment. Starts nothing, writes nothing.

Only plain files under /proc, /etc and /run are read: no subprocess, a few milliseconds.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from envdoctor.facts import SystemFacts

# Environment variables copied into the facts (and so into reports people paste): an allow-list,
# because variables routinely carry tokens. NCCL_* is matched as a prefix.
REPORTED_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_VERSION",  # set by the nvidia/cuda images: the image's toolkit
    "CUDA_DEVICE_ORDER",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_MODULE_LOADING",
    "CUDA_LAUNCH_BLOCKING",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PATH",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ALLOC_CONF",
    "PYTORCH_NVML_BASED_CUDA_CHECK",
    "TORCH_CUDA_ARCH_LIST",
    "TORCH_USE_CUDA_DSA",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_REQUIRE_CUDA",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONNOUSERSITE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HOME",
    "XLA_FLAGS",
    "DOCKER_HOST",
)
REPORTED_ENV_PREFIXES = ("NCCL_",)
# Never reported, even under an allowed prefix.
DENIED_ENV_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
# A URL's userinfo ("https://user:pass@host") is removed from reported values.
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def reported_env(environ: dict[str, str] | os._Environ | None = None) -> dict[str, str]:
    """The allow-listed environment variables that are set, secrets removed."""
    environ = os.environ if environ is None else environ
    out = {}
    for name in sorted(environ):
        allowed = name in REPORTED_ENV or name.startswith(REPORTED_ENV_PREFIXES)
        if allowed and not any(word in name.upper() for word in DENIED_ENV_WORDS):
            out[name] = _URL_USERINFO.sub("***@", environ[name])
    return out


def probe() -> SystemFacts:
    """Everything about the machine that does not need a subprocess."""
    kind = container_kind()
    return SystemFacts(
        os=os_name(),
        kernel=platform.release() or None,
        glibc=glibc_version(),
        arch=platform.machine() or None,
        cpu=cpu_model(),
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        memory_total_mib=_meminfo_mib("MemTotal"),
        in_container=kind is not None,
        container_kind=kind,
        shm_size_mib=_fs_size_mib("/dev/shm"),
        env=reported_env(),
        missing_dirs=missing_dirs(),
    )


def missing_dirs(environ: dict[str, str] | os._Environ | None = None) -> list[str]:
    """``VAR:entry`` for each PATH / LD_LIBRARY_PATH entry that is not a directory, and for a CUDA_HOME /
    CUDA_PATH without ``bin/nvcc`` (a stat each)."""
    environ = os.environ if environ is None else environ
    out = []
    for var in ("PATH", "LD_LIBRARY_PATH"):
        for entry in dict.fromkeys(e for e in environ.get(var, "").split(":") if e):
            if not os.path.isdir(entry):
                out.append(f"{var}:{entry}")
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = environ.get(var)
        if home and not os.path.isfile(os.path.join(home, "bin", "nvcc")):
            out.append(f"{var}:{home}")
    return out


def os_name() -> str | None:
    fields = _key_values(_read("/etc/os-release"))
    name = fields.get("PRETTY_NAME") or " ".join(filter(None, (fields.get("NAME"), fields.get("VERSION"))))
    return name or (f"{platform.system()} {platform.release()}".strip() or None)


def glibc_version() -> str | None:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        value = None
    if value and value.startswith("glibc "):
        return value.split()[1]
    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None


def cpu_model() -> str | None:
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or None


def container_kind(root: str = "/", environ: dict[str, str] | os._Environ | None = None) -> str | None:
    """The kind of container this runs in ("docker", "podman", "kubernetes", ...), None if none seen.

    ``root`` lets tests point the file checks at a planted tree.
    """
    environ = os.environ if environ is None else environ
    base = Path(root)
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if (base / ".dockerenv").exists():
        return "docker"
    if (base / "run/.containerenv").exists():
        return "podman"
    cgroup = _read(str(base / "proc/1/cgroup"))
    for marker, kind in (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"),
                         ("containerd", "containerd"), ("lxc", "lxc")):  # fmt: skip
        if marker in cgroup:
            return kind
    if environ.get("container"):  # set by systemd-nspawn, podman, lxc
        return environ["container"]
    for line in _read(str(base / "proc/self/mountinfo")).splitlines():
        parts = line.split(" - ")
        fields = parts[0].split()
        if len(parts) == 2 and len(fields) > 4 and fields[4] == "/" and parts[1].split()[:1] == ["overlay"]:
            return "unknown"
    return None


def _meminfo_mib(key: str) -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        name, sep, value = line.partition(":")
        if sep and name == key and value.split():
            return int(value.split()[0]) // 1024
    return None


def _fs_size_mib(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize // (1024 * 1024)


def _key_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip("\"'")
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
