"""`python3 -m finance_stack COMMAND [ARGS]`: run one of the stack's operations."""

from __future__ import annotations

import importlib
import sys

# Each command's module, imported only when it runs: its main(argv) -> exit status.
COMMANDS = {
    "secrets": "finance_stack.secrets",
    "alert-sink": "finance_stack.alert_sink",
}


def usage() -> str:
    """The help text: each command with the first line of its module's docstring."""
    lines = [
        "usage: python3 -m finance_stack COMMAND [ARGS]  (COMMAND --help for its options)",
        "",
        "commands:",
    ]
    width = max(len(name) for name in COMMANDS)
    for name, module in sorted(COMMANDS.items()):
        # Importing every module is cheap (standard library only) and keeps one text per command.
        doc = importlib.import_module(module).__doc__ or ""
        lines.append(f"  {name:<{width}}  {doc.strip().splitlines()[0] if doc.strip() else ''}")
    lines += ["", "exit status: 0 ok, 1 failure, 2 usage error"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Dispatch `argv[0]` to its module's main(argv[1:])."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        stream = sys.stdout if argv else sys.stderr
        stream.write(usage())
        return 0 if argv else 2
    command, *rest = argv
    if command not in COMMANDS:
        sys.stderr.write(usage())
        print(f"finance_stack: unknown command: {command}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    status: int = module.main(rest)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
