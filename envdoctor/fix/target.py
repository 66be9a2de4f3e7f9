"""The live target of ``fix --apply`` / ``--rollback``: its prefix, stdlib path and installed distributions.

Runs the target interpreter once (bounded by :data:`QUERY_TIMEOUT_S`) and reads
``<prefix>/conda-meta``; changes nothing. The executor re-reads the target itself because the facts
a plan was made from may be stale or come from another machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from envdoctor.fix.state import ApplyError
from envdoctor.probes._process import run_python

QUERY_TIMEOUT_S = 60.0  # listing distributions, reading the interpreter's paths

_TARGET_SRC = """
import json, sys, sysconfig
from importlib import metadata
dists = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if name and name not in dists:
        dists[name] = d.version
print(json.dumps({"prefix": sys.prefix, "base_prefix": sys.base_prefix,
                  "stdlib": sysconfig.get_path("stdlib"), "executable": sys.executable,
                  "distributions": dists}))
"""


@dataclass
class Target:
    python: str
    prefix: str
    base_prefix: str
    stdlib: str
    distributions: dict[str, str]  # exact name -> version, as installed

    @property
    def in_venv(self) -> bool:
        return self.prefix != self.base_prefix

    @property
    def externally_managed(self) -> bool:
        """PEP 668: a system interpreter (not a venv) whose stdlib holds EXTERNALLY-MANAGED."""
        return not self.in_venv and Path(self.stdlib, "EXTERNALLY-MANAGED").is_file()


def inspect_target(python: str) -> Target:
    """Ask the interpreter for its prefix, stdlib path and installed distributions."""
    try:
        done = run_python(python, _TARGET_SRC, timeout=QUERY_TIMEOUT_S)
    except OSError as exc:
        raise ApplyError(f"{python}: cannot run ({exc.strerror or exc})") from None
    if done.timed_out or done.returncode != 0:
        raise ApplyError(f"{python}: cannot list its packages ({done.stderr_tail() or 'timed out'})")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Target(python, data["prefix"], data["base_prefix"], data["stdlib"], data["distributions"])


def conda_meta_packages(prefix: str) -> dict[str, str]:
    """Packages recorded in ``<prefix>/conda-meta`` (name -> version); {} when there is none."""
    out: dict[str, str] = {}
    for record in sorted(Path(prefix, "conda-meta").glob("*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name"):
            out[str(data["name"])] = str(data.get("version", ""))
    return out
