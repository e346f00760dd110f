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


def scrape_targets(project: Project) -> dict[str, list[dict[str, Any]]]:
    """file_sd target groups per job, from the services' scrape labels."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, service in sorted(project.services.items()):
        labels = service.labels
        if SCRAPE_JOB not in labels:
            continue
        group: dict[str, Any] = {
            "targets": [f"{name}:{port.strip()}" for port in labels[SCRAPE_PORTS].split(",")]
        }
        if labels.get(SCRAPE_LABELS):
            group["labels"] = dict(pair.split("=", 1) for pair in labels[SCRAPE_LABELS].split(","))
        jobs.setdefault(labels[SCRAPE_JOB], []).append(group)
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
