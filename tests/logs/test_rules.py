"""logs/rules.yml loads, and a broken one is rejected naming the file, the line and why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitoring import logs


def _line(path: Path, text: str) -> int:
    """The line of the last occurrence of `text` (a broken copy repeats what it duplicates)."""
    return max(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_rules_name_the_indices_of_the_design(rules: logs.Rules) -> None:
    assert rules.general_index == "ai-finance-logs"
    assert rules.deadletter_index == "ai-finance-deadletter"
    assert {i.name: i.policy for i in rules.indices} == {
        "ai-finance-logs": "ai-finance-30d",
        "ai-finance-errors": "ai-finance-90d",
        "ai-finance-security": "ai-finance-90d",
        "ai-finance-revenue": "ai-finance-30d",
        "ai-finance-trading": "ai-finance-30d",
        "ai-finance-deadletter": "ai-finance-90d",
    }
    assert [route.index for route in rules.routes] == [
        "ai-finance-errors",
        "ai-finance-security",
        "ai-finance-revenue",
        "ai-finance-trading",
    ]


def test_every_class_of_the_issue_is_there_with_its_replacement(rules: logs.Rules) -> None:
    replacements = {c.name: c.replacement for c in rules.classes}
    assert replacements == dict(
        [
            ("authorization", "[REDACTED:authorization]"),
            ("jwt", "[REDACTED:jwt]"),
            ("bearer", "[REDACTED:token]"),
            ("api_key", "[REDACTED:token]"),
            ("secret", "[REDACTED:secret]"),
            ("pan", "[REDACTED:pan]"),
            ("email", "[REDACTED:email]"),
        ]
    )
    assert [c.name for c in rules.classes if c.luhn] == ["pan"]


BROKEN = {
    "unportable-escape": (
        "text: '(?<![A-Za-z0-9._%+-])",
        "text: '\\b(?<![A-Za-z0-9._%+-])",
        "email text pattern has a Unicode-dependent or engine-specific escape",
    ),
    "named-group": (
        "text: 'eyJ[",
        "text: '(?P<jwt>eyJ)[",
        "jwt text pattern has a named group",
    ),
    "anchor": (
        "key: '(?i)authorization'",
        "key: '(?i)^authorization$'",
        "authorization key pattern has an anchor",
    ),
    "late-flag": (
        "text: 'eyJ[",
        "text: 'eyJ(?i)[",
        "jwt text pattern has an inline flag other than a leading (?i)",
    ),
    "does-not-compile": (
        "text: 'eyJ[",
        "text: 'eyJ((",
        "jwt text pattern does not compile",
    ),
    "two-groups": (
        "text: '(?i)(bearer[ ]+)",
        "text: '(?i)(bearer)([ ]+)",
        "bearer text pattern has 2 groups; use (?:...)",
    ),
    "empty-match": (
        "text: 'eyJ[A-Za-z0-9_-]+\\.eyJ[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*'",
        "text: '[A-Za-z]*'",
        "jwt text pattern matches the empty string",
    ),
    "unknown-key": ("    check: luhn", "    check: luhn\n    mask: x", "unknown key 'mask'"),
    "unknown-check": ("    check: luhn", "    check: mod97", "unknown check 'mod97'"),
    "unknown-operator": (
        "{field: error.type, exists: true}",
        "{field: error.type, matches: x}",
        "unknown key 'matches'",
    ),
    "exists-false": (
        "{field: error.type, exists: true}",
        "{field: error.type, exists: false}",
        "exists must be true",
    ),
    "bad-index": ("index: ai-finance-revenue", "index: revenue", "must look like ai-finance-NAME"),
    "index-inside-another": (
        "index: ai-finance-trading",
        "index: ai-finance-errorsx",
        "index 'ai-finance-errorsx' contains, or is part of, another index",
    ),
    "undeclared-index": (
        "index: ai-finance-trading",
        "index: ai-finance-audit",
        "index 'ai-finance-audit' is not one of indices: add it there",
    ),
    "unwritten-index": (
        "title: refused documents}",
        "title: refused documents}\n  - {name: ai-finance-audit, policy: ai-finance-30d, title: x}",
        "index 'ai-finance-audit' is neither general, dead-letter nor a route's",
    ),
    "unknown-policy": (
        "{name: ai-finance-errors, policy: ai-finance-90d",
        "{name: ai-finance-errors, policy: ai-finance-7d",
        "policy 'ai-finance-7d': no elasticsearch/setup/ilm/ai-finance-7d.json",
    ),
    "duplicate-declared-index": (
        "{name: ai-finance-trading,",
        "{name: ai-finance-revenue,",
        "duplicate indices name 'ai-finance-revenue'",
    ),
    "duplicate-class": ("name: bearer", "name: jwt", "duplicate redaction class name 'jwt'"),
    "quote-in-pattern": (
        "[^\"\\x27,;}\\r\\n]+'",
        "[^\"\\x27,;}\\r\\n]+'''",
        "authorization text pattern has a single quote",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_rule_is_reported_with_file_line_and_problem(
    case: str, broken_rules: Callable[[str, str], Path]
) -> None:
    old, new, problem = BROKEN[case]
    path = broken_rules(old, new)
    with pytest.raises(logs.RulesError) as caught:
        logs.load(path)
    first_line = new.splitlines()[-1].strip()
    expected = f"{path}:{_line(path, first_line)}: "
    assert any(p.startswith(expected) and problem in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_invalid_yaml_is_reported_with_its_line(broken_rules: Callable[[str, str], Path]) -> None:
    path = broken_rules("general_index: ai-finance-logs", "general_index: [ai-finance-logs")
    with pytest.raises(logs.RulesError, match=rf"^{path}:\d+: invalid YAML"):
        logs.load(path)


def test_a_missing_section_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("general_index: ai-finance-logs\nroutes: []\n")
    with pytest.raises(logs.RulesError) as caught:
        logs.load(path)
    assert caught.value.problems == [
        f"{path}:1: indices is missing",
        f"{path}:1: deadletter_index is missing",
        f"{path}:2: routes must be a non-empty list",
        f"{path}:1: redaction is missing",
    ]
