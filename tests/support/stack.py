"""Run `python3 -m finance_stack` the way its image does: the standard library and the package."""

from __future__ import annotations

import os
import sys

import yaml

from finance_stack.secrets import Endpoints
from support.repo import ROOT

STACK_SRC = ROOT / "stack" / "src"


def stdlib_python(*args: str) -> list[str]:
    """An argv for this Python without site-packages (-S, -s): only the stdlib and PYTHONPATH."""
    return [sys.executable, "-S", "-s", *args]


def stdlib_env() -> dict[str, str]:
    """A minimal environment whose PYTHONPATH is the package's source folder alone."""
    return {"PATH": os.defpath, "PYTHONPATH": str(STACK_SRC), "LC_ALL": "C.UTF-8"}


def _secrets_init_flags() -> dict[str, str]:
    """The --name=value flags docker-compose.yml gives the secrets-init service."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["secrets-init"]["command"]
    return dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


# Where the stack's services listen, as the compose file passes it to the secrets job.
ENDPOINTS = Endpoints(
    demo_postgres=_secrets_init_flags()["demo-postgres"],
    demo_redis=_secrets_init_flags()["demo-redis"],
    alert_sink=_secrets_init_flags()["alert-sink"],
)
ALERT_SINK_URL = ENDPOINTS.alert_sink
