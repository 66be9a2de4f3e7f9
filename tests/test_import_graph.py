"""The package's import graph has no cycles: a module never needs a module that needs it.

Imports are read from the source with :mod:`ast`, so the test sees every module, including those no
test imports. ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
``pkg``; imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import envdoctor

ROOT = Path(envdoctor.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _statements(body: list[ast.stmt], function_level: bool) -> list[ast.stmt]:
    """The import statements that run when the module (or, with ``function_level``, any code) runs."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            type_checking = isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            type_checking |= isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            if not type_checking:
                out += _statements(node.body + node.orelse, function_level)
        elif isinstance(node, (ast.Try, ast.With)):
            handlers = [s for h in getattr(node, "handlers", []) for s in h.body]
            extra = getattr(node, "orelse", []) + getattr(node, "finalbody", [])
            out += _statements(node.body + handlers + extra, function_level)
        elif function_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out += _statements(node.body, function_level)
        elif function_level:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    out += _statements([child], function_level)
    return out


def _known(name: str) -> str | None:
    """The envdoctor module ``name`` is, or is inside of; None for anything outside the package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, function_level: bool = False) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8")).body, function_level):
        if isinstance(node, ast.Import):
            found |= {_known(a.name) for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
        found |= submodules if len(submodules) == len(node.names) else {*submodules, _known(base)}
    return {m for m in found if m and m != module}


def cycles(function_level: bool) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = {m: imports(m, function_level) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                out.append(sorted([v, *group]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return out


def test_the_graph_is_read_from_every_module():
    assert len(MODULES) > 80 and "envdoctor.readers" in imports("envdoctor.rules.packages")
    assert "envdoctor.rules.libraries" not in imports("envdoctor.rules.packages", function_level=True)


def test_no_import_cycles_among_module_level_imports():
    assert cycles(function_level=False) == []


def test_below_the_command_line_no_cycles_even_through_imports_inside_functions():
    """A lazy import only defers a cycle. The one allowed: the MCP server runs CLI commands in-process,
    and the CLI starts the MCP server; both are front-ends that nothing else imports."""
    front_ends = [g for g in cycles(function_level=True) if all(_front_end(m) for m in g)]
    assert cycles(function_level=True) == front_ends


def _front_end(module: str) -> bool:
    return module in ("envdoctor.cli", "envdoctor.mcp_server") or module.startswith("envdoctor.cli.")
