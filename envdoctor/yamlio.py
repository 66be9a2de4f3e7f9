"""YAML reading with libyaml's C loader when present: five times faster, and `check` reads tables.

Shipped YAML (knowledge rows, error signatures, recipes) reports every problem the same way, as one
line: ``file: row: field: problem``. A table's row is named by its ``name`` when it has one, else by
its position; a recipe is one mapping per file, so its errors read ``file: field: problem``. Reads
only the files it is given; writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` semantics, with the C loader when the PyYAML build has one."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_document(filename: str, text: str, error: type[Exception]) -> Any:
    """The YAML document in ``text``; not YAML raises ``error``: ``file: line N: not valid YAML (why)``."""
    import yaml

    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or exc.__class__.__name__
        raise error(f"{filename}: {where}not valid YAML ({reason})") from None


def read_document(path: Path, error: type[Exception]) -> Any:
    """The YAML document in the file ``path``; a missing, unreadable or non-YAML file raises ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read ({exc.__class__.__name__})") from None
    return load_document(str(path), text, error)


def load_rows(filename: str, text: str, key: str, error: type[Exception]) -> list[dict[str, Any]]:
    """The mappings listed under ``key`` in a YAML file; raises ``error`` naming the file (and the
    row) when the text is not YAML, has no such list, or lists something other than a mapping."""
    data = load_document(filename, text, error)
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise error(f"{filename}: expected a mapping with a '{key}' list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise error(f"{row_name(filename, i, row)}: not a mapping")
    return rows


def row_name(filename: str, i: int, row: Any) -> str:
    """``file: name`` for a row with a name, else ``file: row i``: how every row's error starts."""
    name = row.get("name") if isinstance(row, dict) else None
    return f"{filename}: {name}" if isinstance(name, str) and name else f"{filename}: row {i}"


class Fields:
    """Typed access to the fields of one row (or one recipe) that raises ``error`` as one line,
    ``where: field: problem``; ``label`` names a nested field (``torch.version``)."""

    def __init__(self, where: str, error: type[Exception]) -> None:
        self.where = where
        self.error = error

    def fail(self, label: str, problem: str) -> NoReturn:
        raise self.error(f"{self.where}: {label}: {problem}")

    def known(self, data: dict, fields: set[str], prefix: str = "") -> None:
        """Fail on the first key of ``data`` that is not one of ``fields``: a misspelt field is an
        error, never a value silently dropped."""
        for key in data:
            if key not in fields:
                self.fail(f"{prefix}{key}", f"unknown field (expected one of {', '.join(sorted(fields))})")

    def require(self, data: dict, keys: list[str]) -> None:
        """Fail on the first of ``keys`` that ``data`` lacks (or holds as null)."""
        for key in keys:
            self._get(data, key, key, True)

    def _get(self, data: dict, key: str, label: str, required: bool) -> Any:
        if key not in data or data[key] is None:
            if required:
                self.fail(label, "missing")
            return None
        return data[key]

    def string(self, data: dict, key: str, label: str | None = None) -> str:
        """A required non-empty string, stripped."""
        value = self._get(data, key, label or key, True)
        if not isinstance(value, str) or not value.strip():
            self.fail(label or key, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, data: dict, key: str, choices: tuple[str, ...], label: str | None = None) -> str:
        """A required string that is one of ``choices``."""
        value = self._get(data, key, label or key, True)
        if value not in choices:
            self.fail(label or key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def version(self, data: dict, key: str, label: str | None = None) -> str:
        """A required version (``"2.13.0"``, ``"525.60.13"``); a bare number is read as its text."""
        from packaging.version import InvalidVersion, Version

        label = label or key
        value = self._get(data, key, label, True)
        text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if text is None:
            self.fail(label, f"expected a version string, got {value!r}")
        try:
            Version(text)
        except InvalidVersion:
            self.fail(label, f"{text!r} is not a version")
        return text

    def url(self, data: dict, key: str, label: str | None = None) -> str:
        """A required http(s) URL, without a trailing slash."""
        value = self.string(data, key, label)
        if not value.startswith(("https://", "http://")):
            self.fail(label or key, f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    def mapping(self, data: dict, key: str, label: str | None = None, required: bool = True) -> dict:
        """A mapping; an optional one that is absent reads as empty."""
        value = self._get(data, key, label or key, required)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(label or key, f"expected a mapping, got {type(value).__name__}")
        return value

    def string_list(self, data: dict, key: str, label: str | None = None, required: bool = True) -> list[str]:
        """A list of non-empty strings, each stripped; an optional one that is absent reads as empty."""
        value = self._get(data, key, label or key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            self.fail(label or key, "expected a list of non-empty strings")
        return [x.strip() for x in value]
