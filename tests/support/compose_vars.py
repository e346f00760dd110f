"""The variables docker-compose.yml reads, parsed from its raw text: every one is written
`${NAME:-default}`, and a default may itself hold references
(`${KIBANA_IMAGE:-docker.elastic.co/kibana/kibana:${ELASTIC_VERSION:-8.18.2}}`). The .env.example,
image-pin and version-family checks read the compose file through here.

Comments are parsed too: a comment that spells out a default is one more copy of it, so it must
agree with the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A nested default is resolved at most this deep; Compose itself has no limit, we need two.
MAX_DEPTH = 8
# A reference whose default holds no other one.
INNERMOST = re.compile(r"\$\{(" + NAME.pattern + r"):-([^${}]*)\}")


class ComposeVariableError(ValueError):
    """A reference that is not `${NAME:-default}`, or a name given two different defaults."""


@dataclass(frozen=True)
class Reference:
    """One `${name:-default}` in the text; `default` is the text as written, nested refs kept."""

    name: str
    default: str
    line: int


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def references(text: str) -> list[Reference]:
    """Every reference in `text`, inner ones included, in the order they close."""
    found: list[Reference] = []
    problems: list[str] = []
    # Open references: (name, offset where its default starts, offset of its `$`).
    stack: list[tuple[str, int, int]] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2  # Compose's escape for a literal $
        elif text.startswith("${", i):
            name = NAME.match(text, i + 2)
            after = name.end() if name else i + 2
            if name is None or not text.startswith(":-", after):
                shown = text[i : after + 2]
                problems.append(f"line {_line(text, i)}: {shown}… is not ${{NAME:-default}}")
                i = after
            else:
                stack.append((name.group(), after + 2, i))
                i = after + 2
        else:
            bare = NAME.match(text, i + 1) if text[i] == "$" else None
            if bare:
                problems.append(f"line {_line(text, i)}: bare ${bare.group()}")
            elif text[i] == "}" and stack:
                name_, start, dollar = stack.pop()
                found.append(Reference(name_, text[start:i], _line(text, dollar)))
            i += 1
    problems += [f"line {_line(text, dollar)}: ${{{n}:-… is never closed" for n, _, dollar in stack]
    if problems:
        raise ComposeVariableError("; ".join(problems))
    return found


def defaults(text: str) -> dict[str, str]:
    """Name → default as written, sorted by name; a name must have the same default everywhere."""
    by_name: dict[str, set[str]] = {}
    for reference in references(text):
        by_name.setdefault(reference.name, set()).add(reference.default)
    conflicts = [f"{n}: {sorted(d)}" for n, d in sorted(by_name.items()) if len(d) > 1]
    if conflicts:
        raise ComposeVariableError("different defaults for one variable: " + "; ".join(conflicts))
    return {name: found.pop() for name, found in sorted(by_name.items())}


def resolve(default: str) -> str:
    """A default as Compose applies it when nothing is set: nested references by their defaults."""
    for _ in range(MAX_DEPTH):
        if "${" not in default:
            return default
        default = INNERMOST.sub(lambda match: match.group(2), default)
    raise ComposeVariableError(f"references nested deeper than {MAX_DEPTH}: {default}")
