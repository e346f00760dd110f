"""`python3 -m finance_stack COMMAND [ARGS]`: the stack's operations, one command per step."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# command -> "module" (its main(argv)) or "module:function"
COMMANDS = {
    "settings": "finance_stack.settings",
    "preflight": "finance_stack.commands:cmd_preflight",
    "validate": "finance_stack.validate",
    "pull": "finance_stack.commands:cmd_pull",
    "targets": "finance_stack.commands:cmd_targets",
    "remember": "finance_stack.commands:cmd_remember",
    "wait": "finance_stack.commands:cmd_wait",
    "urls": "finance_stack.commands:cmd_urls",
    "forget": "finance_stack.commands:cmd_forget",
    "status": "finance_stack.commands:cmd_status",
    "health": "finance_stack.commands:cmd_health",
    "drill": "finance_stack.commands:cmd_drill",
}


def _entry(target: str) -> Callable[[list[str]], int]:
    module, _, function = target.partition(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function or "main")
    return entry


def main(argv: list[str]) -> int:
    """Dispatch to a command; --help lists them; an unknown one is a usage error (2)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(COMMANDS))
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(
            f"finance_stack: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return _entry(COMMANDS[argv[0]])(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
