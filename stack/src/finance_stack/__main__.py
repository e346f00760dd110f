"""`python3 -m finance_stack COMMAND [ARGS]`: run one of the stack's operations."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# Each command's entry, imported only when it runs: "module" (its main(argv)) or
# "module:function", taking argv and returning the exit status.
COMMANDS = {
    "secrets": "finance_stack.secrets",
    "alert-sink": "finance_stack.alert_sink",
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
    "drill": "finance_stack.drill_command:cmd_drill",
    "backup": "finance_stack.backup_commands:cmd_backup",
    "restore": "finance_stack.backup_commands:cmd_restore",
    "upgrade-backup": "finance_stack.backup_commands:cmd_upgrade_backup",
    "volume-worker": "finance_stack.volume_worker",
}


def entry(command: str) -> Callable[[list[str]], int]:
    """The function that runs `command`."""
    module, _, function = COMMANDS[command].partition(":")
    found: Callable[[list[str]], int] = getattr(importlib.import_module(module), function or "main")
    return found


def usage() -> str:
    """The help text: each command with the first line of its entry's docstring."""
    lines = [
        "usage: python3 -m finance_stack COMMAND [ARGS]  (COMMAND --help for its options)",
        "",
        "commands:",
    ]
    width = max(len(name) for name in COMMANDS)
    for name, target in COMMANDS.items():
        # Importing every module is cheap (standard library only) and keeps one text per command.
        function = entry(name)
        doc = (
            function.__doc__ if ":" in target else sys.modules[function.__module__].__doc__
        ) or ""
        lines.append(f"  {name:<{width}}  {doc.strip().splitlines()[0] if doc.strip() else ''}")
    lines += ["", "exit status: 0 ok, 1 failure, 2 usage error"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Dispatch `argv[0]` to its entry with argv[1:]."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        stream = sys.stdout if argv else sys.stderr
        stream.write(usage())
        return 0 if argv else 2
    command, *rest = argv
    if command not in COMMANDS:
        sys.stderr.write(usage())
        print(f"finance_stack: unknown command: {command}", file=sys.stderr)
        return 2
    return entry(command)(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
