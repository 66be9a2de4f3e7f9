"""Every rule is one documented unit: a docstring in one template, listed by its module, stamped findings.

The docstring template (envdoctor/rules/__init__.py): what it detects, why it matters, optionally when
the severity differs, and the fix, in that order. Each rules module's docstring names the facts it reads,
and that list is checked against the code: the ``facts.X`` it reads itself and through envdoctor.readers.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import threading
from pathlib import Path

from cli_helpers import invoke

from envdoctor import readers
from envdoctor.facts import Facts
from envdoctor.findings import Severity
from envdoctor.rules import DOC_SECTION, RULE_MODULES, Rule, all_rules, rule, rules_of

WHAT_OPENINGS = ("Detects ", "Lists ")


def template_problems(doc: str) -> list[str]:
    """What a rule's docstring lacks of the template, in words (empty when it follows it)."""
    problems = []
    if not doc.startswith(WHAT_OPENINGS):
        problems.append("what it detects (first line 'Detects ...' or 'Lists ...')")
    found = [(m.group(1), m.end()) for m in DOC_SECTION.finditer(doc)]
    names = [name for name, _ in found]
    for needed in ("Why", "Fix"):
        if names.count(needed) != 1:
            problems.append(f"one '{needed}:' section (found {names.count(needed)})")
    if not problems and names != sorted(names, key=("Why", "Severity", "Fix").index):
        problems.append(f"sections in the order Why, Severity, Fix (found {', '.join(names)})")
    for name, start in found:
        end = DOC_SECTION.search(doc, start)
        if not doc[start : end.start() if end else len(doc)].strip():
            problems.append(f"text in its '{name}:' section")
    return problems


def test_every_rule_docstring_has_what_why_and_fix() -> None:
    missing = {r.id: template_problems(r.doc) for r in all_rules()}
    assert not {rule_id: p for rule_id, p in missing.items() if p}


def test_the_template_check_names_what_is_missing() -> None:
    assert template_problems("Detects a thing.\n\nWhy: it breaks.\nFix: mend it.") == []
    assert template_problems("A thing.\n\nFix: mend it.") == [
        "what it detects (first line 'Detects ...' or 'Lists ...')",
        "one 'Why:' section (found 0)",
    ]
    assert template_problems("Detects a thing.\nFix: mend it.\nWhy: it breaks.") == [
        "sections in the order Why, Severity, Fix (found Fix, Why)"
    ]
    assert template_problems("Detects a thing.\nWhy: it breaks.\nFix:\n") == ["text in its 'Fix:' section"]


def test_rules_of_lists_each_module_and_together_they_are_all_rules() -> None:
    listed = [r for module in RULE_MODULES for r in rules_of(module)]
    assert all(rules_of(module) for module in RULE_MODULES), "a rules module declares no rule"
    assert [r.id for r in listed] == [r.id for r in all_rules()]
    gpu = importlib.import_module("envdoctor.rules.gpu")
    assert rules_of(gpu) == rules_of("envdoctor.rules.gpu")
    assert {r.id for r in rules_of(gpu)} >= {"torch-cpu-build", "arch-not-in-wheel"}


def test_a_finding_carries_its_rule_id_severity_sources_and_verify_unless_it_says_otherwise() -> None:
    r = next(r for r in all_rules() if r.verify and len(r.sources) > 1)
    plain = r.finding("message", evidence={"torch.version": "2.6.0"})
    assert (plain.id, plain.severity, plain.sources, plain.verify) == (
        r.id,
        r.severity,
        list(r.sources),
        r.verify,
    )
    assert plain.evidence == {"torch.version": "2.6.0"} and plain.actions == [] and plain.fix == ""
    own = r.finding("milder", severity=Severity.INFO, sources=[r.sources[1]])
    assert (own.id, own.severity, own.sources) == (r.id, Severity.INFO, [r.sources[1]])


def test_the_decorated_name_is_the_registered_rule() -> None:
    gpu = importlib.import_module("envdoctor.rules.gpu")
    assert isinstance(gpu.torch_cpu_build, Rule)
    assert gpu.torch_cpu_build in rules_of(gpu)
    declare = rule(
        "torch-cpu-build", name="", severity=Severity.INFO, area="torch", summary="", fix="", sources=()
    )
    try:
        declare(lambda facts: iter(()))
    except ValueError as exc:
        assert "duplicate rule id 'torch-cpu-build'" in str(exc)
    else:
        raise AssertionError("a second rule with a taken id was registered")


# --- each rules module says what it checks and which facts it reads ------------------------------------

FACT_FIELDS = {f.name for f in dataclasses.fields(Facts)}


def _facts_attributes(tree: ast.AST) -> set[str]:
    """The ``facts.X`` a piece of code reads itself."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "facts"
    }


def _reader_reads() -> dict[str, set[str]]:
    """For each function of envdoctor.readers, the facts it reads, through the readers it calls too."""
    tree = ast.parse(Path(readers.__file__).read_text(encoding="utf-8"))
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    calls = {
        name: {
            n.func.id
            for n in ast.walk(fn)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in functions
        }
        for name, fn in functions.items()
    }
    reads = {name: _facts_attributes(fn) for name, fn in functions.items()}
    changed = True
    while changed:  # close over calls between readers
        changed = False
        for name in functions:
            more = set().union(*(reads[c] for c in calls[name])) - reads[name]
            if more:
                reads[name] |= more
                changed = True
    return reads


def _declared_reads(doc: str) -> set[str]:
    line = next((ln for ln in doc.splitlines() if ln.startswith("Facts read: ")), "")
    names = line.removeprefix("Facts read: ").split("(")[0].rstrip(". ")
    return {n.strip() for n in names.split(",") if n.strip()}


def test_every_rules_module_says_what_it_checks_and_the_facts_it_reads() -> None:
    reader_reads = _reader_reads()
    wrong = {}
    for name in RULE_MODULES:
        module = importlib.import_module(name)
        doc = module.__doc__ or ""
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        used = _facts_attributes(tree)
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "envdoctor.readers":
                used |= set().union(*(reader_reads.get(a.name, set()) for a in node.names))
        declared = _declared_reads(doc)
        if len(doc.splitlines()[0]) < 20 or declared != used or not declared <= FACT_FIELDS:
            wrong[name] = f"declares {sorted(declared)}, reads {sorted(used)}"
    assert not wrong, "fix the 'Facts read:' line of each module's docstring"


# --- `envdoctor rules ID` prints the documentation the template holds ----------------------------------


def test_rules_id_prints_the_rules_whole_documentation_in_every_format() -> None:
    r = next(r for r in all_rules() if r.id == "cuda-lib-conflict")
    text = invoke(["rules", r.id])
    assert text.exit_code == 0 and text.stderr == ""
    assert text.stdout.startswith(f"{r.id}  [warning, CUDA toolkit & libraries]\n    {r.name}\n")
    for line in r.doc.splitlines():
        assert f"    {line}".rstrip() + "\n" in text.stdout
    assert f"    verify: {r.verify}\n" in text.stdout and all(
        f"      {s}\n" in text.stdout for s in r.sources
    )
    data = json.loads(invoke(["rules", r.id, "--json"]).stdout)
    row = next(row for row in json.loads(invoke(["rules", "--json"]).stdout) if row["id"] == r.id)
    assert data == {**row, "name": r.name, "verify": r.verify, "doc": r.doc}
    markdown = invoke(["rules", r.id, "--format", "markdown"]).stdout
    assert markdown.startswith(f"### `{r.id}` (warning, CUDA toolkit & libraries)\n\n**{r.name}**\n")
    assert "\n\nWhy: " in markdown and "\n\nSeverity:" in markdown and "\n\nFix: " in markdown
    assert "\n\n\n" not in markdown


def test_rules_with_an_unknown_id_is_a_usage_error_that_suggests_the_close_one() -> None:
    typo = invoke(["rules", "shm-to-small"])
    assert (typo.exit_code, typo.stdout) == (2, "")
    assert typo.stderr == "envdoctor: error: no rule 'shm-to-small' (did you mean shm-too-small?)\n"
    unknown = invoke(["rules", "no-such-rule-at-all"])
    assert unknown.exit_code == 2 and "`envdoctor rules` lists them" in unknown.stderr


def test_a_broken_knowledge_table_while_preloading_prints_no_traceback(monkeypatch, capsys) -> None:
    """check loads the tables in a background thread while it probes; an error there must reach the
    user once, as the internal-error finding evaluate() makes, not also as the thread's traceback."""
    import envdoctor.knowledge as knowledge
    from envdoctor.rules import preload

    def broken(name: str) -> list:
        raise knowledge.KnowledgeError(f"{name}.yaml: row 1: lastest: unknown field")

    uncaught: list = []
    monkeypatch.setattr(knowledge, "load_table", broken)
    monkeypatch.setattr(threading, "excepthook", uncaught.append)  # what prints a thread's traceback
    preload().join(timeout=60)
    assert not uncaught and "Traceback" not in capsys.readouterr().err
