"""Read `docker compose config|ps --format json` on stdin and print what start-monitoring.sh needs.

python3 -m monitoring.compose_json ports    "service port" per published port
python3 -m monitoring.compose_json images   "service image" per service that is pulled, not built
python3 -m monitoring.compose_json states   "service state health exit_code" per container
python3 -m monitoring.compose_json status [--json]
python3 -m monitoring.compose_json targets DIR  write DIR/<job>.json (Prometheus file_sd) from the
                                                `ai-finance.scrape.*` labels of the services in
                                                a `compose config` document; print "job target..."
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Labels of a Compose service that Prometheus scrapes only when its profile runs.
SCRAPE_JOB = "ai-finance.scrape.job"
SCRAPE_PORTS = "ai-finance.scrape.ports"  # comma-separated
SCRAPE_LABELS = "ai-finance.scrape.labels"  # name=value,name=value


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


def scrape_targets(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Prometheus file_sd target groups per job, from the services' scrape labels."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, service in sorted(config.get("services", {}).items()):
        labels = service.get("labels") or {}
        if SCRAPE_JOB not in labels:
            continue
        group: dict[str, Any] = {
            "targets": [f"{name}:{port.strip()}" for port in labels[SCRAPE_PORTS].split(",")]
        }
        if labels.get(SCRAPE_LABELS):
            group["labels"] = dict(pair.split("=", 1) for pair in labels[SCRAPE_LABELS].split(","))
        jobs.setdefault(labels[SCRAPE_JOB], []).append(group)
    return jobs


def write_targets(config: dict[str, Any], directory: Path) -> list[str]:
    """Write directory/<job>.json for every job a running service has, remove the others'."""
    jobs = scrape_targets(config)
    directory.mkdir(parents=True, exist_ok=True)
    for job, groups in jobs.items():
        # Written aside and renamed: Prometheus never reads half a file.
        partial = directory / f".{job}.json.partial"
        partial.write_text(json.dumps(groups, indent=2) + "\n")
        partial.chmod(0o644)  # Prometheus runs as nobody
        os.replace(partial, directory / f"{job}.json")
    for stale in sorted(directory.glob("*.json")):
        if stale.stem not in jobs:
            stale.unlink()
    return [
        f"{job} " + " ".join(t for group in groups for t in group["targets"])
        for job, groups in sorted(jobs.items())
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
    elif action == "targets" and len(argv) == 2:
        lines = write_targets(json.loads(text), Path(argv[1]))
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
