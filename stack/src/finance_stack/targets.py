"""Prometheus' file_sd targets of the services the chosen profiles run.

Services of optional profiles carry `ai-finance.scrape.*` labels; `start` writes
prometheus/targets/<job>.json from the services it runs and removes the files of jobs it does
not run, so a service left out is never reported down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from finance_stack.compose import Project

SCRAPE_JOB = "ai-finance.scrape.job"
SCRAPE_PORTS = "ai-finance.scrape.ports"  # comma-separated
SCRAPE_LABELS = "ai-finance.scrape.labels"  # name=value,name=value
# The `service` label of each port's target, in the order of the ports; by default every target
# is labelled with its compose service. The label is what alerts and inhibition match on.
SCRAPE_SERVICES = "ai-finance.scrape.services"  # comma-separated


def scrape_targets(project: Project) -> dict[str, list[dict[str, Any]]]:
    """file_sd target groups per job, from the services' scrape labels. Every target carries a
    `service` label: the compose service, or its port's entry of ai-finance.scrape.services."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, service in sorted(project.services.items()):
        labels = service.labels
        if SCRAPE_JOB not in labels:
            continue
        ports = [port.strip() for port in labels[SCRAPE_PORTS].split(",")]
        services = [s.strip() for s in labels.get(SCRAPE_SERVICES, "").split(",") if s.strip()]
        if services and len(services) != len(ports):
            raise ValueError(
                f"service {name}: {SCRAPE_SERVICES} names {len(services)} services for "
                f"{len(ports)} ports in {SCRAPE_PORTS}"
            )
        extra = {}
        if labels.get(SCRAPE_LABELS):
            extra = dict(pair.split("=", 1) for pair in labels[SCRAPE_LABELS].split(","))
        groups = jobs.setdefault(labels[SCRAPE_JOB], [])
        if not services:
            groups.append(
                {
                    "targets": [f"{name}:{port}" for port in ports],
                    "labels": {"service": name, **extra},
                }
            )
            continue
        for port, owner in zip(ports, services, strict=True):
            groups.append({"targets": [f"{name}:{port}"], "labels": {"service": owner, **extra}})
    return jobs


def write_targets(project: Project, directory: Path) -> list[str]:
    """Write directory/<job>.json for every job a service of the project has; remove the others."""
    jobs = scrape_targets(project)
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
