# Runs inside the TARGET interpreter as ``python -c <this file's text>`` (or, when the target is the
# interpreter running envdoctor, is imported and ``payload()`` called in process): standard library only,
# Python 3.8+ syntax, never imports an installed package (a broken one cannot crash it).
# Touches: reads files on the interpreter's sys.path (package metadata); writes nothing, starts nothing.
# Prints one line: the payload mark followed by JSON with the interpreter's facts, the metadata
# header of every distribution on sys.path, the torch package directories and where nvidia-* wheels
# keep their libraries. Requirements are returned raw: the parent evaluates them with `packaging`.
import json
import os
import platform
import sys
import sysconfig

MARK = "@@envdoctor-payload@@"


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def metadata_header(path):
    """Name, Version and Requires-Dist from a METADATA / PKG-INFO header (stops at the body)."""
    name = version = None
    requires = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                if key == "Requires-Dist":
                    requires.append(value.strip())
                elif key == "Name" and name is None:
                    name = value.strip()
                elif key == "Version" and version is None:
                    version = value.strip()
    except OSError:
        return None
    return name, version, requires


def egg_requires(path):
    """requires.txt of an .egg-info directory, with its [extra:marker] sections as markers."""
    text = read_text(path) or ""
    requires = []
    extra = marker = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = line[1:-1].partition(":")
            continue
        conditions = []
        if marker:
            conditions.append("(" + marker + ")")
        if extra:
            conditions.append('extra == "' + extra + '"')
        requires.append(line + ("; " + " and ".join(conditions) if conditions else ""))
    return requires


def distributions(entries):
    found = []
    for entry in entries:
        try:
            names = sorted(os.listdir(entry))
        except OSError:
            continue
        for name in names:
            path = os.path.join(entry, name)
            if name.endswith(".dist-info"):
                header = metadata_header(os.path.join(path, "METADATA"))
            elif name.endswith(".egg-info"):
                if os.path.isdir(path):
                    header = metadata_header(os.path.join(path, "PKG-INFO"))
                    if header:
                        header = (header[0], header[1], egg_requires(os.path.join(path, "requires.txt")))
                else:
                    header = metadata_header(path)
            else:
                continue
            if header and header[0] and header[1]:
                found.append([header[0], header[1], entry, header[2]])
    return found


def env_kind():
    cfg = read_text(os.path.join(sys.prefix, "pyvenv.cfg"))
    if cfg is not None:
        for line in cfg.splitlines():
            if line.partition("=")[0].strip() == "uv":
                return "uv"
        return "venv"
    if os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
        return "conda"
    if getattr(sys, "real_prefix", None) or sys.prefix != sys.base_prefix:
        return "venv"
    return "system"


def conda_packages():
    """name -> version from conda-meta/<name>-<version>-<build>.json; {} outside a conda env."""
    try:
        names = os.listdir(os.path.join(sys.prefix, "conda-meta"))
    except OSError:
        return {}
    found = {}
    for name in names:
        parts = name[: -len(".json")].rsplit("-", 2) if name.endswith(".json") else []
        if len(parts) == 3:
            found[parts[0]] = parts[1]
    return found


def marker_environment():
    """PEP 508 marker variables of this interpreter (what `packaging` would compute here)."""
    iver = sys.implementation.version
    impl_version = f"{iver.major}.{iver.minor}.{iver.micro}"
    if iver.releaselevel != "final":
        impl_version += iver.releaselevel[0] + str(iver.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def payload(path):
    """The facts of this interpreter, reading the distributions on the sys.path entries ``path``."""
    entries = []
    for entry in path:
        if entry and os.path.isdir(entry) and entry not in entries:
            entries.append(entry)
    in_venv = sys.prefix != sys.base_prefix or bool(getattr(sys, "real_prefix", None))
    stdlib = sysconfig.get_path("stdlib") or ""
    torch_dirs = []
    for entry in entries:
        if os.path.isfile(os.path.join(entry, "torch", "__init__.py")):
            version_py = read_text(os.path.join(entry, "torch", "version.py"))
            torch_dirs.append({"location": entry, "version_py": version_py})
    result = {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "implementation": platform.python_implementation(),
            "prefix": sys.prefix,
            "env_kind": env_kind(),
            "externally_managed": (not in_venv)
            and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")),
            "conda_packages": conda_packages(),
        },
        "markers": marker_environment(),
        "dists": distributions(entries),
        "torch_dirs": torch_dirs,
        "nvidia_roots": [e for e in entries if os.path.isdir(os.path.join(e, "nvidia"))],
    }
    return result


if __name__ == "__main__":
    # `python -c` puts the current directory first on sys.path: never look there.
    search = sys.path[1:] if sys.path and sys.path[0] in ("", ".") else sys.path
    sys.stdout.write(MARK + json.dumps(payload(search)) + "\n")
