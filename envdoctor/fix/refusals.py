"""When ``fix`` must not run pip: a PEP 668 system Python, or a torch that conda installed.

Two checks with one wording: the planner's, from the facts (:func:`refusals`), and the executor's,
from the live target just before it changes anything (:func:`live_refusals`; the facts may be
stale). Reads only what it is given; touches nothing. Each refusal names the flag that overrides it.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.utils import canonicalize_name

from envdoctor.facts import Facts
from envdoctor.fix.model import Plan
from envdoctor.fix.target import Target, conda_meta_packages


def refusals(facts: Facts, allow_system: bool, allow_conda: bool, plan: Plan | None = None) -> list[str]:
    """Reasons the plan must not be applied to this interpreter without an explicit flag."""
    if plan is not None and not plan.changes_packages:
        return []  # only environment variables / manual steps: nothing touches the packages
    py = facts.python
    target = py.executable or "this Python"
    return _reasons(
        target,
        py.prefix or target,
        bool(py.externally_managed) and not allow_system,
        [] if allow_conda else (py.conda_packages or {}),
    )


def live_refusals(target: Target, allow_system: bool, allow_conda: bool) -> list[str]:
    """The executor's own check of the interpreter it is about to change (facts may be stale)."""
    return _reasons(
        target.python,
        target.prefix,
        target.externally_managed and not allow_system,
        [] if allow_conda else conda_meta_packages(target.prefix),
    )


def _reasons(python: str, prefix: str, externally_managed: bool, conda_packages: Iterable[str]) -> list[str]:
    out = []
    if externally_managed:
        out.append(
            f"{python} is an externally-managed system Python (PEP 668): pip must not change it. "
            f"Safer: python3 -m venv .venv && envdoctor fix --python .venv/bin/python "
            f"(or pass --break-system-packages to do it anyway)"
        )
    conda_torch = sorted(n for n in conda_packages if canonicalize_name(n) in ("torch", "pytorch"))
    if conda_torch:
        out.append(
            f"torch in {prefix} is managed by conda ({', '.join(conda_torch)} in conda-meta): pip "
            f"would overwrite conda's files. Safer: a fresh venv or `conda install` "
            f"(or pass --allow-conda to use pip anyway)"
        )
    return out
