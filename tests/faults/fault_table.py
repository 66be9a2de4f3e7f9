"""The fault table of docs/reliability.md, from the ``FAULTS`` rows of the tests/faults modules.

Run ``python tests/faults/fault_table.py`` to print every section; test_faults_doc.py checks that the
document holds exactly these sections (in any order), so each module's rows live with its tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "reliability.md"
HEADER = "| fault | command | what envdoctor does | exit | bound | test |\n|---|---|---|---|---|---|\n"


def fault_modules() -> dict[str, object]:
    """Every tests/faults/test_*.py module that declares FAULTS, by its path from the repository root."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    found = {}
    for path in sorted(HERE.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"fault_table_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "FAULTS"):
            found[f"tests/faults/{path.name}"] = module
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section(name: str, module: object) -> str:
    """The markdown section of one module: a heading with its path, then one row per fault."""
    rows = "".join(
        f"| {_cell(f.fault)} | `{_cell(f.command)}` | {_cell(f.behaviour)} | {f.exit_code} | "
        f"{f.bound_s:g} s | `{f.test}` |\n"
        for f in module.FAULTS
    )
    return f"### {name}\n\n{HEADER}{rows}"


def sections() -> dict[str, str]:
    return {name: section(name, module) for name, module in fault_modules().items()}


if __name__ == "__main__":
    print("\n".join(sections().values()), end="")
