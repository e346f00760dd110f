"""The stack's own operations (standard library only): secrets, the alert sink, the compose reader, preflight, status, health, validate and drill. `python3 -m finance_stack --help`."""
