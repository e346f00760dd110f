"""The scale-out tests' programs: Thanos at the pin of docker-compose.scale.yml, built from its
module (or reused from the cache) by pinned-go.sh, and the deployment they run in
(support/scale_cluster.py), once for the module."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from support.datastores import Database
from support.repo import ROOT
from support.scale import missing
from support.scale_cluster import Cluster, running_cluster

PINNED_GO = ROOT / "tests" / "live" / "images" / "pinned-go.sh"
# A first build of Thanos takes many minutes on 2 cores; tests/run.sh does it before pytest.
BUILD_TIMEOUT_SECONDS = 1500


@pytest.fixture(scope="session")
def thanos_binary() -> str:
    """Thanos at the override's pin, built (or reused from the cache) by pinned-go.sh."""
    if shutil.which("go") is None:
        missing("go not found: Thanos is built from its module (tests/live/images/pinned-go.sh)")
    result = subprocess.run(
        [str(PINNED_GO), "thanos"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        missing(f"pinned-go.sh thanos failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cluster(
    thanos_binary: str, module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Thanos, the Alertmanager pair, two exporter replicas and Prometheus, running."""
    with running_cluster(thanos_binary, module_database, tmp_path_factory.mktemp("scale")) as found:
        yield found
