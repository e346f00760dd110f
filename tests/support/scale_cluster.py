"""The scale-out test's deployment (tests/scale/): Thanos from the override, the Alertmanager
pair with the stack's alertmanager.yml pointed at a recorder, two replicas of the revenue
exporter over one seeded Postgres, and the pinned Prometheus with the generated scale config's
remote_write and alerting, made local, scraping the replicas and itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from finance_stack.alert_sink import AlertSinkServer
from support.alertmanager import config_copy
from support.datastores import Database
from support.repo import ROOT
from support.scale import (
    Ports,
    allocate,
    localize,
    override_command,
    pinned_tool,
    running,
    thanos_cluster,
)
from support.servers import free_port, serving_alert_sink, stop_process

SCALE_CONFIG = ROOT / "prometheus" / "prometheus.scale.yml"
# Two scrape targets, one exporter: what the two differ in is `replica` only (instance is the
# logical name, not the address), so Thanos Query's --query.replica-label=replica merges them.
REPLICAS = ("a", "b")
ALERT = "ScaleOutPairDrill"
# The test's Alertmanager peer timeout: the second of the pair waits this long (times its
# position) for the first's notification log before sending itself (default 15s).
PEER_TIMEOUT_SECONDS = 2
PAYMENTS = {"succeeded": 3, "failed": 2}
RESEND_SECONDS = 2
# The test's timings: seconds, not the stack's 15s.
TIMINGS = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}


@dataclass(frozen=True)
class Cluster:
    """Where the running pieces answer."""

    prometheus: str
    query: str
    alertmanagers: tuple[str, str]
    sink: AlertSinkServer


def _seed(database: Database) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, tier) VALUES ('scale@example.test', 'pro') RETURNING id"
        ).fetchone()
        assert row is not None
        for status, count in PAYMENTS.items():
            for _ in range(count):
                conn.execute(
                    "INSERT INTO payments (user_id, amount, currency, plan, method, source, status)"
                    " VALUES (%s, 10.00, 'EUR', 'pro', 'card', 'web', %s)",
                    (row[0], status),
                )


def _prometheus_config(tmp_path: Path, ports: Ports, exporters: dict[str, int]) -> Path:
    """The scale config's remote_write and alerting, made local, over the test's targets."""
    scale: dict[str, Any] = yaml.safe_load(SCALE_CONFIG.read_text())
    local = yaml.safe_load(localize(yaml.safe_dump(scale), "", ports))
    rules = tmp_path / "drill.rules.yml"
    # Routed like any platform warning: to the platform receiver (Slack, here the recorder).
    labels = {"severity": "warning", "team": "platform", "category": "meta", "service": "scale"}
    drill = {"alert": ALERT, "expr": "vector(1)", "labels": labels}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "drill", "rules": [drill]}]}))
    targets = [
        {
            "targets": [f"127.0.0.1:{port}"],
            "labels": {"instance": "revenue-exporter", "exporter": "revenue", "replica": name},
        }
        for name, port in exporters.items()
    ]
    config = {
        "global": {**scale["global"], **TIMINGS},
        "alerting": local["alerting"],
        "rule_files": [str(rules)],
        "remote_write": local["remote_write"],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{ports.of('prometheus', 9090)}"]}],
            },
            {"job_name": "finance-exporter", "static_configs": targets},
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_args(service: str, ports: Ports, tmp_path: Path, config: Path) -> list[str]:
    args = []
    for arg in override_command(service):
        if arg.startswith("--config.file="):
            arg = f"--config.file={config}"
        elif arg.startswith("--storage.path="):
            arg = f"--storage.path={tmp_path / service}"
        args.append(localize(arg, service, ports))
    return [
        *args,
        f"--web.listen-address=127.0.0.1:{ports.of(service, 9093)}",
        f"--cluster.peer-timeout={PEER_TIMEOUT_SECONDS}s",
    ]


@contextmanager
def running_cluster(thanos_binary: str, database: Database, tmp_path: Path) -> Iterator[Cluster]:
    """Everything running: Thanos, the Alertmanager pair and its recorder, two exporter
    replicas over `database` (seeded with PAYMENTS), Prometheus. Stopped by pid afterwards."""
    prometheus, alertmanager = pinned_tool("prometheus"), pinned_tool("alertmanager")
    _seed(database)
    ports = allocate({"prometheus": (9090,), "alertmanager": (9093, 9094)})
    ports.by_service["alertmanager-2"] = {9093: free_port(), 9094: free_port()}
    with ExitStack() as stack:
        thanos = stack.enter_context(thanos_cluster(thanos_binary, tmp_path))
        ports.by_service.update(thanos.by_service)
        sink = stack.enter_context(serving_alert_sink())
        sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
        for service in ("alertmanager", "alertmanager-2"):
            config = config_copy(tmp_path / service, sink_url)
            argv = [alertmanager, *_alertmanager_args(service, ports, tmp_path, config)]
            url = ports.url(service, 9093)
            stack.enter_context(running(argv, tmp_path / f"{service}.log", f"{url}/-/ready"))
        exporters = {name: free_port() for name in REPLICAS}
        for name, port in exporters.items():
            env = {
                **os.environ,
                "DATABASE_URL": database.exporter_url,
                "EXPORTER_CHECKPOINT_DIR": str(tmp_path / f"checkpoints-{name}"),
            }
            argv = [sys.executable, "-m", "finance_exporter", "revenue"]
            argv += ["--listen", f"127.0.0.1:{port}"]
            with (tmp_path / f"exporter-{name}.log").open("wb") as out:
                process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            stack.callback(stop_process, process)
        config = _prometheus_config(tmp_path, ports, exporters)
        argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
        argv.append(f"--web.listen-address=127.0.0.1:{ports.of('prometheus', 9090)}")
        # Alerts go out on the first evaluation only once the Alertmanagers are discovered; the
        # resend then follows in seconds, not the default minute.
        argv.append(f"--rules.alert.resend-delay={RESEND_SECONDS}s")
        url = ports.url("prometheus", 9090)
        stack.enter_context(running(argv, tmp_path / "prometheus.log", f"{url}/-/ready"))
        yield Cluster(
            prometheus=url,
            query=ports.url("thanos-query", 10902),
            alertmanagers=(ports.url("alertmanager", 9093), ports.url("alertmanager-2", 9093)),
            sink=sink,
        )
