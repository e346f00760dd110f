"""Read `docker compose config|ps --format json` on stdin and print what start-monitoring.sh needs.

python3 -m monitoring.compose_json ports    "service port" per published port
python3 -m monitoring.compose_json images   "service image" per service that is pulled, not built
python3 -m monitoring.compose_json states   "service state health exit_code" per container
python3 -m monitoring.compose_json status [--json]
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _ps_rows(text: str) -> list[dict[str, Any]]:
    # Compose prints one JSON object per line (v2.21+) or one array (older releases).
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ports(config: dict[str, Any]) -> list[str]:
    """Published host ports of every service in a `compose config` document."""
    lines = []
    for name, service in sorted(config.get("services", {}).items()):
        for port in service.get("ports", []):
            if port.get("published"):
                lines.append(f"{name} {port['published']}")
    return lines


def images(config: dict[str, Any]) -> list[str]:
    """Images that must come from a registry (services without a build section)."""
    return [
        f"{name} {service['image']}"
        for name, service in sorted(config.get("services", {}).items())
        if "build" not in service and service.get("image")
    ]


def states(rows: list[dict[str, Any]]) -> list[str]:
    """One line per container: service, state, health (- if none), exit code."""
    return [
        f"{row['Service']} {row['State']} {row.get('Health') or '-'} {row.get('ExitCode', 0)}"
        for row in rows
    ]


def status(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Service, state, health and published addresses per container."""
    result = []
    for row in sorted(rows, key=lambda r: str(r["Service"])):
        published = sorted(
            {
                f"{p.get('URL', '')}:{p['PublishedPort']}"
                for p in row.get("Publishers") or []
                if p.get("PublishedPort")
            }
        )
        result.append(
            {
                "service": row["Service"],
                "state": row["State"],
                "health": row.get("Health") or "",
                "ports": published,
            }
        )
    return result


def main(argv: list[str]) -> int:
    """Dispatch on the first argument; see the module docstring."""
    action = argv[0] if argv else ""
    text = sys.stdin.read()
    if action == "ports":
        lines = ports(json.loads(text))
    elif action == "images":
        lines = images(json.loads(text))
    elif action == "states":
        lines = states(_ps_rows(text))
    elif action == "status":
        rows = status(_ps_rows(text))
        if "--json" in argv:
            print(json.dumps(rows, indent=2))
            return 0
        lines = [
            f"{r['service']:<22} {r['state']:<10} {r['health'] or '-':<10} {' '.join(r['ports'])}"
            for r in rows
        ]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
