"""The settings every command of start-monitoring.sh shares, resolved once and printed for bash.

`python3 -m finance_stack settings` prints shell assignments (shlex-quoted) for `eval`:
COMPOSE_PROFILES and where it came from, BIND_ADDRESS, TRACES_TO (where traces go, for the
help text), WAIT_TIMEOUT and DRILL_TIMEOUT. A bad value exits 1 naming the variable and the
line of `.env` it came from.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from finance_stack import datastores, state
from finance_stack.envfile import EnvFileError, Settings


@dataclass(frozen=True)
class Resolved:
    """The shared settings of one command run."""

    profiles: str
    profiles_origin: str
    bind_address: str
    otlp_chosen: bool  # OTLP_ENDPOINT set by the user (even empty): start leaves it to Compose
    traces_to: str  # where traces go, for a person
    wait_timeout: int
    drill_timeout: int


def profiles_of(settings: Settings) -> tuple[str, str]:
    """COMPOSE_PROFILES (the environment, else the last start, else .env, else the default),
    plus the app-* profiles of the datastore URLs that are set."""
    profiles, origin = _chosen_profiles(settings)
    return with_datastore_profiles(profiles, origin, settings)


def with_datastore_profiles(profiles: str, origin: str, settings: Settings) -> tuple[str, str]:
    """Add app-postgres / app-redis when their URL is set: whatever else runs, your own
    datastores are then watched (server metrics and alerts), not only read."""
    names = [name.strip() for name in profiles.split(",") if name.strip()]
    if "*" in names:
        return profiles, origin
    added = [(p, s) for p, s in datastores.profiles(settings) if p not in names]
    if not added:
        return profiles, origin
    reasons = ", ".join(f"{p} for {s.name} ({s.origin})" for p, s in added)
    return ",".join([*names, *(p for p, _ in added)]), f"{origin}; {reasons}"


def _chosen_profiles(settings: Settings) -> tuple[str, str]:
    from_environment = settings.environ.get("COMPOSE_PROFILES")
    if from_environment is not None:
        return from_environment, "environment"
    remembered = state.read(settings.root, state.PROFILES_FILE)
    if remembered and remembered.strip():
        return remembered.strip(), "the last start (.state/profiles)"
    configured = settings.get("COMPOSE_PROFILES")
    if configured.is_set:
        return configured.value, configured.origin
    # The embedded demo datastores run only when no external data source is configured.
    if settings.value("DATABASE_URL") or settings.value("REDIS_URL"):
        return "full", "default (DATABASE_URL or REDIS_URL set)"
    return "demo,full", "default"


def enabled(profiles: str, *wanted: str) -> bool:
    """Whether any of `wanted` runs under a COMPOSE_PROFILES value."""
    names = {name.strip() for name in profiles.split(",")}
    return "*" in names or any(name in names for name in wanted)


def resolve(settings: Settings) -> Resolved:
    """Every shared setting, checked."""
    profiles, origin = profiles_of(settings)
    otlp = settings.get("OTLP_ENDPOINT")
    # Traces go to Jaeger whenever it runs (preflight exports its OTLP endpoint), unless
    # OTLP_ENDPOINT is set (empty keeps them in the process).
    if otlp.is_set:
        traces_to = otlp.value or "none"
    elif enabled(profiles, "full", "traces"):
        traces_to = "Jaeger's OTLP/HTTP endpoint"
    else:
        traces_to = "none"
    return Resolved(
        otlp_chosen=otlp.is_set,
        traces_to=traces_to,
        profiles=profiles,
        profiles_origin=origin,
        bind_address=settings.value("BIND_ADDRESS", "127.0.0.1"),
        wait_timeout=settings.integer("WAIT_TIMEOUT", 600, minimum=1),
        drill_timeout=settings.integer("DRILL_TIMEOUT", 30, minimum=1),
    )


def shell(resolved: Resolved) -> str:
    """Assignments for bash's eval."""
    values = {
        "PROFILES": resolved.profiles,
        "PROFILES_ORIGIN": resolved.profiles_origin,
        "BIND_ADDRESS": resolved.bind_address,
        "WAIT_TIMEOUT": str(resolved.wait_timeout),
        "DRILL_TIMEOUT": str(resolved.drill_timeout),
        "TRACES_TO": resolved.traces_to,
    }
    lines = [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the shared settings as shell assignments."""
    parser = argparse.ArgumentParser(prog="finance_stack settings")
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        resolved = resolve(Settings(args.root))
    except (EnvFileError, ValueError) as err:
        print(f"[x] {err}", file=sys.stderr)
        return 1
    sys.stdout.write(shell(resolved))
    return 0
