"""The Python packages' redaction modules: monitoring/logs/redaction.py with CLASSES filled in
from the rules, formatted as ruff formats it."""

from __future__ import annotations

from pathlib import Path

from monitoring.logs import redaction
from monitoring.logs.model import Rules
from monitoring.logs.rules import HEADER

REDACTION_MODULES = (
    Path("exporters/src/finance_exporter/redaction.py"),
    Path("demo/src/finance_demo/platform/redaction.py"),
)


def _python_literal(text: str) -> str:
    """A string literal in ruff's style: double quotes, single ones when that escapes less."""
    escaped = text.replace("\\", "\\\\")
    if '"' in text and "'" not in text:
        return f"'{escaped}'"
    return '"' + escaped.replace('"', '\\"') + '"'


def _python_pattern(pattern: str | None) -> list[str]:
    """re.compile(...) as ruff formats it at a depth of 8 columns: on one line, or the literal
    on its own line, or (longer than that) in chunks of 64 characters, implicitly concatenated."""
    if pattern is None:
        return ["None,"]
    literal = _python_literal(pattern)
    if len(literal) + len("re.compile(),") <= 100 - 8:
        return [f"re.compile({literal}),"]
    if len(literal) <= 100 - 12:
        return ["re.compile(", f"    {literal}", "),"]
    chunks = [_python_literal(pattern[i : i + 64]) for i in range(0, len(pattern), 64)]
    return ["re.compile(", *(f"    {chunk}" for chunk in chunks), "),"]


def render_redaction_module(rules: Rules) -> str:
    """The redaction module of a Python package: monitoring/logs/redaction.py with CLASSES."""
    source = Path(redaction.__file__).read_text(encoding="utf-8")
    lines = ["CLASSES: tuple[Redaction, ...] = ("]
    for c in rules.classes:
        fields = [
            _python_literal(c.name) + ",",
            *_python_pattern(c.text),
            *_python_pattern(c.key),
            _python_literal(c.replacement) + ",",
            f"{c.luhn},",
        ]
        lines += ["    Redaction(", *(f"        {line}" for line in fields), "    ),"]
    lines.append(")")
    placeholder = "CLASSES: tuple[Redaction, ...] = ()"
    assert source.count(placeholder) == 1, "redaction.py: CLASSES placeholder missing"
    return HEADER + source.replace(placeholder, "\n".join(lines))
