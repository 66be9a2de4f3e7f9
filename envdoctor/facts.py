"""The typed, versioned snapshot of facts that every rule reads.

Facts come from probes on this machine, from another interpreter (``--python``), from a saved
``check --json`` file (``--facts``) or from a pasted report (``--from-report``). Rules never probe:
they only read a :class:`Facts`. ``None`` always means *unknown* (not probed, not in the report),
never "no" or "empty"; an empty list means "probed, and there were none".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envdoctor.errors import EnvdoctorError

# 2: cuda.toolkits, cuda.path_nvcc, system.missing_dirs and the toolchain section (all optional:
# a version-1 file reads as those facts unknown).
SCHEMA_VERSION = 2
# Sections every facts file written by `check --json` holds (see load_facts).
REQUIRED_SECTIONS = ("system", "python", "nvidia", "packages", "torch")

Origin = Literal["probe", "report", "file"]
# How the torch import went: "skipped" is ``check --quick`` (not imported), "unknown" not probed.
TorchStatus = Literal["ok", "missing", "import-error", "crashed", "timeout", "skipped", "unknown"]
# Why the driver could not be asked (NVML, else nvidia-smi); None when it answered.
NvidiaError = Literal["driver-missing", "driver-library-mismatch", "no-device", "timeout", "crashed", "error"]
DockerStatus = Literal["ok", "sdk-missing", "no-engine", "permission-denied", "error", "unknown"]


@dataclass
class Gpu:
    """One GPU as the driver (NVML / nvidia-smi) sees it."""

    index: int
    name: str
    compute_capability: str | None = None  # "8.9"
    memory_total_mib: int | None = None
    mig_mode: bool | None = None
    capability_inferred: bool = False  # True when derived from the name via the knowledge tables


@dataclass
class SystemFacts:
    os: str | None = None  # "Debian GNU/Linux 12 (bookworm)"
    kernel: str | None = None
    glibc: str | None = None
    arch: str | None = None  # "x86_64"
    cpu: str | None = None
    cpu_count: int | None = None
    memory_total_mib: int | None = None
    in_container: bool | None = None
    container_kind: str | None = None  # "docker", "podman", "kubernetes", "containerd", ...
    shm_size_mib: int | None = None
    # GPUs of other vendors (AMD, Intel) named by a pasted report: CUDA rules never count them.
    other_gpus: list[str] | None = None
    # Allow-listed environment variables only (see envdoctor.probes.system.REPORTED_ENV).
    env: dict[str, str] | None = None
    # Entries of PATH / LD_LIBRARY_PATH that are not directories ("PATH:/opt/cuda-11.2/bin"), and a
    # CUDA_HOME / CUDA_PATH without bin/nvcc ("CUDA_HOME:/usr/local/cuda-11.0").
    missing_dirs: list[str] | None = None


@dataclass
class PythonFacts:
    version: str | None = None  # "3.11.7"
    executable: str | None = None
    implementation: str | None = None
    prefix: str | None = None
    env_kind: str | None = None  # "venv", "uv", "conda", "system"
    externally_managed: bool | None = None  # PEP 668 marker present and not in a venv
    # Records in <prefix>/conda-meta (name -> version); {} for a non-conda env, None if not probed.
    conda_packages: dict[str, str] | None = None


@dataclass
class NvidiaFacts:
    source: str | None = None  # "nvml", "nvidia-smi", "report"
    driver_version: str | None = None  # "580.95.05"
    cuda_driver_version: str | None = None  # highest CUDA the driver supports, "13.0"
    gpus: list[Gpu] | None = None
    error: NvidiaError | None = None
    error_detail: str | None = None
    # NVML's own failure when nvidia-smi answered in its place, or a query NVML could not answer.
    nvml_error: str | None = None


@dataclass
class LibraryFile:
    name: str  # "libcudnn.so.9"
    path: str
    origin: str  # "LD_LIBRARY_PATH", "ldconfig", "wheel"
    version: str | None = None


@dataclass
class Toolkit:
    """One CUDA toolkit installed on the machine (``/usr/local/cuda-12.8``)."""

    path: str
    version: str | None = None  # "12.8", from its version.json / version.txt


@dataclass
class CudaFacts:
    cuda_home: str | None = None
    nvcc_path: str | None = None  # the nvcc a build uses: $CUDA_HOME/bin/nvcc, else the one on PATH
    nvcc_version: str | None = None  # "13.0"
    libraries: list[LibraryFile] | None = None
    path_nvcc: str | None = None  # the first nvcc on PATH (what a shell runs), resolved
    toolkits: list[Toolkit] | None = None  # every toolkit under /usr/local and /opt (cuda-X.Y)


@dataclass
class ToolchainFacts:
    """The host build tools a CUDA extension build (flash-attn, xformers from source) uses."""

    gcc: str | None = None  # "13.2.0": the gcc on PATH (nvcc's default host compiler)
    gxx: str | None = None  # "13.2.0": the g++ on PATH (torch.utils.cpp_extension's C++ compiler)
    ninja: str | None = None  # ninja on PATH: its path (probe) or "ninja <version>" (a report)
    cmake: str | None = None  # cmake on PATH: its path (probe) or "cmake 3.22.1" (a report)
    missing: list[str] | None = None  # of gcc, g++, ninja, cmake: those looked for and not found


@dataclass
class Requirement:
    """One unmet ``Requires-Dist`` of an installed distribution (like ``pip check``)."""

    package: str
    package_version: str
    requirement: str  # "numpy<2,>=1.21"
    installed: str | None  # installed version of the required project, None if missing


@dataclass
class Distribution:
    name: str
    version: str
    location: str | None = None
    # False for a package directory without any dist-info/egg-info (copied in, or a broken uninstall).
    has_metadata: bool | None = None


CUDA_WHEEL_PREFIXES = ("nvidia-", "cuda-")
NOT_CUDA_WHEELS = ("nvidia-ml-py",)  # NVML's Python binding (an envdoctor dependency), no CUDA library


def is_cuda_wheel(name: str) -> bool:
    """A wheel that ships CUDA libraries (nvidia-cublas-cu12, cuda-bindings): what ``nvidia_wheels`` holds."""
    return name.startswith(CUDA_WHEEL_PREFIXES) and name not in NOT_CUDA_WHEELS


@dataclass
class PackagesFacts:
    # Normalised project name -> version, for the tracked ML packages that are installed.
    versions: dict[str, str] | None = None
    # Every CUDA wheel in the env, nvidia-* / cuda-* (name -> version; see is_cuda_wheel).
    nvidia_wheels: dict[str, str] | None = None
    unmet: list[Requirement] | None = None
    # Every distribution providing torch (more than one = mixed installs), with where it lives.
    torch_installs: list[Distribution] | None = None
    # torch/version.py read without importing torch: {"version", "cuda", "hip", "git_version"}.
    torch_build: dict[str, str | None] | None = None
    # Full listing of the environment (name -> version); used by fix snapshots and diff.
    all: dict[str, str] | None = None


@dataclass
class TorchDevice:
    index: int
    name: str
    capability: str | None = None  # "9.0"
    bf16_supported: bool | None = None
    total_memory_mib: int | None = None


@dataclass
class ScaledMmResult:
    ok: bool
    error: str | None = None


@dataclass
class TorchFacts:
    status: TorchStatus = "unknown"
    error: str | None = None
    version: str | None = None
    cuda: str | None = None  # torch.version.cuda
    hip: str | None = None
    cudnn_version: int | None = None
    nccl_version: str | None = None
    cuda_available: bool | None = None
    warnings: list[str] | None = None  # warning text emitted by import torch / is_available()
    device_count: int | None = None
    arch_list: list[str] | None = None  # torch.cuda.get_arch_list(): ["sm_75", ..., "compute_120"]
    devices: list[TorchDevice] | None = None
    float8_dtypes: list[str] | None = None
    scaled_mm: ScaledMmResult | None = None
    numpy_version: str | None = None  # as seen from inside the torch process


@dataclass
class DockerFacts:
    status: DockerStatus = "unknown"
    error: str | None = None
    server_version: str | None = None
    runtimes: list[str] | None = None
    default_runtime: str | None = None
    cdi_spec_dirs: list[str] | None = None


@dataclass
class Facts:
    schema_version: int = SCHEMA_VERSION
    envdoctor_version: str | None = None
    origin: Origin = "probe"
    system: SystemFacts = field(default_factory=SystemFacts)
    python: PythonFacts = field(default_factory=PythonFacts)
    nvidia: NvidiaFacts = field(default_factory=NvidiaFacts)
    cuda: CudaFacts = field(default_factory=CudaFacts)
    packages: PackagesFacts = field(default_factory=PackagesFacts)
    torch: TorchFacts = field(default_factory=TorchFacts)
    docker: DockerFacts = field(default_factory=DockerFacts)
    toolchain: ToolchainFacts = field(default_factory=ToolchainFacts)
    # Probe name -> one-line error, for probes that crashed or timed out ("☠" lines in the report).
    probe_errors: dict[str, str] = field(default_factory=dict)
    # Probe name -> seconds it took (shown with -v).
    timings: dict[str, float] = field(default_factory=dict)
    # Error lines found in a pasted report (envdoctor.paste); matched against error signatures.
    error_lines: list[str] = field(default_factory=list)
    # Facts of a pasted report that a person wrote (prose, a quoted command) rather than a tool printed:
    # fact path ("torch.version", "nvidia.gpus") -> the words that stated it. Every other fact of a
    # report is tool output. A rule resting only on these is a warning unless an error line agrees.
    stated: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facts:
        """Build facts from a dict, as written by :meth:`to_dict` (unknown keys are ignored)."""
        if not isinstance(data, dict):
            raise FactsError("facts must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise FactsError(
                f"unsupported schema_version {version!r} (this envdoctor reads ≤ {SCHEMA_VERSION})"
            )
        return _build(cls, data)


class FactsError(EnvdoctorError, ValueError):
    """Facts that cannot be read: the message is one line naming the problem."""


def load_facts(path: str | Path) -> Facts:
    """Read a facts file written by ``envdoctor check --json`` (the whole output or its ``facts``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FactsError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FactsError(f"{p}: cannot read ({exc.__class__.__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise FactsError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise FactsError(f"{p}: JSON nested too deeply to be a facts file") from None
    if isinstance(data, dict) and isinstance(data.get("facts"), dict):
        data = data["facts"]
    try:
        facts = Facts.from_dict(data)
        _require_sections(data)
    except FactsError as exc:
        raise FactsError(f"{p}: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise FactsError(f"{p}: malformed facts ({exc.__class__.__name__})") from None
    facts.origin = "file" if facts.origin == "probe" else facts.origin
    return facts


@functools.cache
def is_fact_path(path: str) -> bool:
    """Whether a dotted path (``"torch.version"``, ``"nvidia.cuda_driver_version"``) names a field of
    :class:`Facts`, through nested sections: report parsers and signature files name facts this way, and
    a misspelt path must be an error rather than a value silently dropped."""
    tp: Any = Facts
    for name in path.split("."):
        tp = _shape(tp)[0]
        if not _is_dataclass(tp) or name not in _field_types(tp):
            return False
        tp = _field_types(tp)[name]
    return True


@functools.cache
def _field_types(tp: type) -> dict[str, Any]:
    """Field name -> resolved type of a dataclass."""
    hints = typing.get_type_hints(tp)
    return {f.name: hints[f.name] for f in dataclasses.fields(tp)}


@functools.cache
def _shape(tp: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    """(the type, origin, args) of a type, with ``X | None`` reduced to X. Worked out once per type:
    resolving annotations per value made reading a 1 000-node fleet take seconds."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _shape(inner[0])
    return tp, origin, args


_is_dataclass = functools.cache(dataclasses.is_dataclass)


def _require_sections(data: dict[str, Any]) -> None:
    """A facts file names its schema version and holds every section ``check --json`` writes.

    Any JSON object would otherwise read as a machine where nothing is wrong (every fact unknown).
    """
    missing = [key for key in REQUIRED_SECTIONS if not isinstance(data.get(key), dict)]
    if "schema_version" not in data or missing:
        what = "no schema_version" if "schema_version" not in data else f"no {', '.join(missing)}"
        raise FactsError(f"not an envdoctor facts file ({what}); write one with `envdoctor check --json`")


def _build(tp: Any, value: Any) -> Any:
    """Convert JSON data into the annotated type ``tp`` (dataclasses, lists, dicts, optionals)."""
    if value is None:
        return None
    tp, origin, args = _shape(tp)
    if _is_dataclass(tp):
        if not isinstance(value, dict):
            raise FactsError(f"{tp.__name__}: expected an object, got {type(value).__name__}")
        hints = _field_types(tp)
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in hints})
    if origin in (typing.Union, types.UnionType):
        return value  # a union of several types: kept as JSON gave it
    if origin is list:
        if not isinstance(value, list):
            raise FactsError(f"expected a list, got {type(value).__name__}")
        return [_build(args[0], v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise FactsError(f"expected an object, got {type(value).__name__}")
        return {str(k): _build(args[1], v) for k, v in value.items()}
    if origin is Literal:
        return value
    if tp in (int, float) and isinstance(value, bool):
        raise FactsError(f"expected a number, got {value!r}")
    if tp is float and isinstance(value, int):
        return float(value)
    if tp in (str, int, float, bool) and not isinstance(value, tp):
        raise FactsError(f"expected {tp.__name__}, got {value!r}")
    return value
