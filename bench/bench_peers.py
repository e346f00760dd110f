"""Benchmark: the revenue exporter beside query-exporter and postgres_exporter, same load.

Usage: nice -n 19 .venv/bin/python bench/bench_peers.py [--payments 100000 1000000 10000000]
           [--scrapers 1 8 32] [--paced-scrapers 32] [--pace 1] [--soak-minutes 0]
           [--phase-seconds 40] [--interval 15] [--trickle-per-second 20]
           [--logins-per-second 5] [--tools ours query-exporter postgres_exporter] [--json PATH]

For each size: its own PostgreSQL 15 (as the tests start it, with pg_stat_statements), the
reference data seeded by the demo seeder, and a steady trickle of new payments and logins on a
thread. Then per tool, as a child process on 127.0.0.1: the time from its start to the first
complete /metrics (every business metric present, and for ours no first fold in progress), one
phase per scraper count in which every scraper scrapes in a loop with Prometheus 3's headers
(10 s timeout, counted as a failure), one per paced count in which each scraper scrapes every
--pace seconds at an offset of its own (as Prometheus servers do), an optional soak of ours
(RSS each minute) at the largest size, and at the end a check that its finance_payments_total by
status equals a direct count. The peers run the naive full-aggregate SQL of our revenue queries
(no watermark); the same SQL run once directly is the "naive SQL alone" row. Markdown table per
size to stdout, progress to stderr, every figure with --json. bench/README.md says how to run it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import yaml

# The tests' server helpers, and the stack package they import (as pytest's pythonpath does).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack" / "src"))

from finance_demo.access import POSTGRES_EXPORTER_ROLE, set_postgres_exporter_password
from finance_demo.catalog import ALLOWED
from finance_demo.migrate import migrate
from finance_demo.seed import SeedPlan, seed_postgres
from finance_exporter.domains.revenue import QUERIES as REVENUE_QUERIES
from finance_exporter.selfmetrics import BACKFILL_IN_PROGRESS
from support.servers import PostgresServer, free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path("/var/cache/ai-finance")
QUERY_EXPORTER_VERSION = "5.2.2"
QUERY_EXPORTER_VENV = CACHE / "bench" / f"query-exporter-{QUERY_EXPORTER_VERSION}"
# The version docker-compose.yml pins, built by tests/live/images/pinned-go.sh postgres_exporter.
POSTGRES_EXPORTER_VERSION = "v0.17.1"
POSTGRES_EXPORTER_BIN = (
    CACHE / "go" / "bin" / f"postgres_exporter@{POSTGRES_EXPORTER_VERSION}" / "postgres_exporter"
)
# Its collectors enabled by default in that version: off, so only the custom queries run.
POSTGRES_EXPORTER_DEFAULT_COLLECTORS = (
    "database",
    "locks",
    "replication",
    "replication_slot",
    "roles",
    "stat_bgwriter",
    "stat_database",
    "stat_user_tables",
    "statio_user_tables",
    "wal",
)
TOOLS = ("ours", "query-exporter", "postgres_exporter")
SCRAPE_TIMEOUT_SECONDS = 10.0
# What Prometheus 3 sends (as bench_scrape.py), with the scrape timeout it announces.
PROMETHEUS_HEADERS = {
    "Accept": (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    ),
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": f"{SCRAPE_TIMEOUT_SECONDS:g}",
}
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_STATEMENTS_CONF = (
    "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_utility = off\n"
)
# The statements of the exporter role (every tool connects as it; the trickle does not).
_DB_SIDE = """
SELECT coalesce(sum(s.total_exec_time), 0), coalesce(sum(s.calls), 0),
       coalesce(sum(s.calls) FILTER (WHERE s.query LIKE '%%GROUP BY status, method%%'), 0)
FROM pg_stat_statements AS s
JOIN pg_database AS d ON d.oid = s.dbid
JOIN pg_roles AS r ON r.oid = s.userid
WHERE d.datname = current_database() AND r.rolname = %s
"""
_RECOUNT = """
SELECT status, count(*) FROM payments WHERE status IN ('succeeded', 'failed') GROUP BY status
"""

# The naive full-aggregate equivalents of our revenue queries: the whole table on every run,
# gauges straight from the live tables (our SQL before the watermark and the summaries). Each
# "GROUP BY status, method" marks one refresh in pg_stat_statements (_DB_SIDE).
NAIVE_SQL: dict[str, str] = {
    "finance_payments_gross_amount_total": """
SELECT currency, plan, source, sum(amount) AS value
FROM payments WHERE status = 'succeeded'
GROUP BY currency, plan, source""",
    "finance_refunds_amount_total": """
SELECT p.currency, p.plan, p.source, sum(r.amount) AS value
FROM refunds AS r JOIN payments AS p ON p.id = r.payment_id
GROUP BY p.currency, p.plan, p.source""",
    "finance_payments_total": """
SELECT status, method, count(*) AS value
FROM payments WHERE status IN ('succeeded', 'failed')
GROUP BY status, method""",
    "finance_monthly_recurring_revenue_amount": """
SELECT currency, plan,
       sum(CASE billing_period WHEN 'yearly' THEN amount / 12 ELSE amount END) AS value
FROM subscriptions WHERE status IN ('active', 'past_due')
GROUP BY currency, plan""",
    "finance_active_subscriptions": """
SELECT plan, count(*) AS value
FROM subscriptions WHERE status IN ('active', 'past_due')
GROUP BY plan""",
    "finance_active_users": """
SELECT tier, count(*) AS value
FROM users WHERE status = 'active' AND last_active_at >= now() - interval '30 days'
GROUP BY tier""",
    "finance_user_signups_total": """
SELECT tier, count(*) AS value FROM users GROUP BY tier""",
    "finance_user_churns_total": """
SELECT tier, count(*) AS value FROM users WHERE status = 'churned' GROUP BY tier""",
}
METRICS = {q.metric.name: q.metric for q in REVENUE_QUERIES if q.metric is not None}
assert set(NAIVE_SQL) == set(METRICS), "NAIVE_SQL must cover exactly the revenue metrics"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.MULTILINE)
_STATUS = re.compile(r'status="([^"]*)"')


def _log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes: everything started is registered and stopped by pid -------------------------


@dataclass
class Child:
    """A tool under test: its process, port and log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float


_CHILDREN: list[subprocess.Popen[bytes]] = []


def _spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Child:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=out, stderr=out)
    _CHILDREN.append(process)
    return Child(name, process, port, log, started)


def _stop(child: Child) -> None:
    stop_process(child.process)
    if child.process in _CHILDREN:
        _CHILDREN.remove(child.process)


def _stop_all() -> None:
    for process in list(_CHILDREN):
        stop_process(process)
        _CHILDREN.remove(process)


def _tail(child: Child) -> str:
    return child.log.read_text(errors="replace")[-2000:] if child.log.exists() else ""


# --- the tools --------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _start_ours(url: str, workdir: Path, interval: float) -> Child:
    port = free_port()
    tool_dir = workdir / "ours"
    tool_dir.mkdir()
    (tool_dir / "database_url").write_text(url + "\n")
    (tool_dir / "database_url").chmod(0o600)
    (tool_dir / "config.yml").write_text(f"min_interval_seconds: {interval:g}\n")
    env = {
        **_clean_env(),
        "DATABASE_URL_FILE": str(tool_dir / "database_url"),
        "EXPORTER_LISTEN": f"127.0.0.1:{port}",
        "EXPORTER_CONFIG": str(tool_dir / "config.yml"),
        "EXPORTER_CHECKPOINT_DIR": str(tool_dir / "checkpoint"),  # empty: no checkpoint
        "EXPORTER_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "finance_exporter", "revenue"]
    return _spawn("ours", argv, env, tool_dir, port)


def _find_python_312() -> str:
    """A Python >= 3.12 for query-exporter 5.2.2 (Requires-Python >= 3.12)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (13, 12)]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python3"))[
        ::-1
    ]
    for candidate in filter(None, candidates):
        probe = [candidate, "-c", "import sys; assert sys.version_info >= (3, 12)"]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return candidate
    raise RuntimeError("query-exporter 5.2.2 needs Python >= 3.12; none found (pyenv, PATH)")


def _ensure_query_exporter() -> Path:
    """query-exporter in a venv of its own (its dependencies may clash with ours); idempotent."""
    binary = QUERY_EXPORTER_VENV / "bin" / "query-exporter"
    if binary.exists():
        probe = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        if QUERY_EXPORTER_VERSION in probe.stdout + probe.stderr:
            return binary
    _log(f"installing query-exporter {QUERY_EXPORTER_VERSION} into {QUERY_EXPORTER_VENV}")
    QUERY_EXPORTER_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_find_python_312(), "-m", "venv", "--clear", str(QUERY_EXPORTER_VENV)], check=True
    )
    pip = [str(QUERY_EXPORTER_VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run(
        [*pip, f"query-exporter=={QUERY_EXPORTER_VERSION}", "psycopg[binary]"],
        check=True,
        env=_clean_env(),
    )
    return binary


def _query_exporter_config(url: str, interval: float) -> dict[str, Any]:
    """Its 5.2.2 format (schema.py): databases, metrics, queries with an interval."""
    dsn = url.replace("postgresql://", "postgresql+psycopg://", 1)
    metrics = {
        name: {"type": spec.kind, "description": spec.help, "labels": list(spec.labels)}
        for name, spec in METRICS.items()
    }
    # Its result columns are named after the metric they set.
    queries = {
        name.removeprefix("finance_"): {
            "databases": ["finance"],
            "metrics": [name],
            "sql": sql.replace("AS value", f"AS {name}"),
            "interval": max(1, round(interval)),
        }
        for name, sql in NAIVE_SQL.items()
    }
    return {"databases": {"finance": {"dsn": dsn}}, "metrics": metrics, "queries": queries}


def _start_query_exporter(url: str, workdir: Path, interval: float) -> Child:
    binary = _ensure_query_exporter()
    port = free_port()
    tool_dir = workdir / "query-exporter"
    tool_dir.mkdir()
    config = tool_dir / "config.yaml"
    config.write_text(yaml.safe_dump(_query_exporter_config(url, interval), sort_keys=False))
    config.chmod(0o600)
    argv = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning"]
    return _spawn("query-exporter", argv, _clean_env(), tool_dir, port)


def _namespace(name: str, taken: dict[str, Any]) -> tuple[str, str]:
    """Split `name` into a namespace not yet taken and a column: finance_active_users and
    finance_active_subscriptions cannot both be namespace finance_active."""
    parts = name.split("_")
    for cut in range(len(parts) - 1, 0, -1):
        namespace = "_".join(parts[:cut])
        if namespace not in taken:
            return namespace, "_".join(parts[cut:])
    raise ValueError(f"no free namespace for {name}")


def _postgres_exporter_queries(cache_seconds: int) -> dict[str, Any]:
    """Its --extend.query-path format (cmd/postgres_exporter/queries.go): a namespace per
    query, one metric per column; the metric is `<namespace>_<column>`."""
    queries: dict[str, Any] = {}
    for name, sql in NAIVE_SQL.items():
        namespace, column = _namespace(name, queries)
        spec = METRICS[name]
        columns: list[dict[str, Any]] = [
            {label: {"usage": "LABEL", "description": label}} for label in spec.labels
        ]
        usage = "COUNTER" if spec.kind == "counter" else "GAUGE"
        columns.append({column: {"usage": usage, "description": spec.help}})
        queries[namespace] = {
            "query": sql.replace("AS value", f"AS {column}"),
            "master": True,
            "cache_seconds": cache_seconds,
            "metrics": columns,
        }
    return queries


def _start_postgres_exporter(url: str, workdir: Path, cache_seconds: int) -> Child:
    if not POSTGRES_EXPORTER_BIN.exists():
        raise RuntimeError(
            f"{POSTGRES_EXPORTER_BIN} missing: build it with "
            "tests/live/images/pinned-go.sh postgres_exporter"
        )
    port = free_port()
    tool_dir = workdir / "postgres_exporter"
    tool_dir.mkdir()
    queries = tool_dir / "queries.yaml"
    queries.write_text(yaml.safe_dump(_postgres_exporter_queries(cache_seconds), sort_keys=False))
    env = {**_clean_env(), "DATA_SOURCE_NAME": url + "?sslmode=disable"}
    argv = [str(POSTGRES_EXPORTER_BIN), f"--web.listen-address=127.0.0.1:{port}"]
    argv += ["--extend.query-path", str(queries), "--log.level=warn"]
    argv += ["--disable-default-metrics", "--disable-settings-metrics"]
    argv += [f"--no-collector.{name}" for name in POSTGRES_EXPORTER_DEFAULT_COLLECTORS]
    return _spawn("postgres_exporter", argv, env, tool_dir, port)


# --- the database: seed, trickle, statistics --------------------------------------------------


def _seed(server: PostgresServer, payments: int) -> tuple[str, str]:
    """The reference data; returns the superuser URL and the exporter role's URL."""
    name = "bench_peers"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin = server.url(dbname=name)
    password = secrets.token_urlsafe(16)
    with psycopg.connect(admin, autocommit=True) as conn:
        migrate(conn)
        set_postgres_exporter_password(conn, password)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with psycopg.connect(admin) as conn:
        seed_postgres(conn, SeedPlan(payments=payments, seed=1, anchor=datetime.now(UTC)))
        conn.commit()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return admin, server.url(POSTGRES_EXPORTER_ROLE, password, name)


class Trickle:
    """New final payments and logins at a steady rate, on a thread, as the superuser (so its
    statements are not counted as any tool's)."""

    def __init__(self, url: str, payments_per_second: float, logins_per_second: float) -> None:
        self.url = url
        self.payments_per_second = payments_per_second
        self.logins_per_second = logins_per_second
        self.payments = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        rng = random.Random(1)
        tick = 0.25
        owed_payments = owed_logins = 0.0
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SELECT max(id) FROM users").fetchone()
            max_user = int(row[0]) if row and row[0] else 1
            next_at = time.monotonic()
            while not self._stop.is_set():
                owed_payments += self.payments_per_second * tick
                owed_logins += self.logins_per_second * tick
                count, owed_payments = int(owed_payments), owed_payments - int(owed_payments)
                logins, owed_logins = int(owed_logins), owed_logins - int(owed_logins)
                try:
                    self._insert(conn, rng, max_user, count, logins)
                    self.payments += count
                except psycopg.Error:
                    self.errors += 1
                next_at += tick
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    @staticmethod
    def _insert(
        conn: psycopg.Connection[Any], rng: random.Random, max_user: int, count: int, logins: int
    ) -> None:
        rows = [
            (
                rng.randint(1, max_user),
                round(rng.uniform(5, 500), 2),
                rng.choice(ALLOWED[("payments", "currency")]),
                rng.choice(ALLOWED[("payments", "plan")]),
                rng.choice(ALLOWED[("payments", "method")]),
                rng.choice(ALLOWED[("payments", "source")]),
                "failed" if rng.random() < 0.08 else "succeeded",
            )
            for _ in range(count)
        ]
        with conn.transaction(), conn.cursor() as cur:
            if rows:
                cur.executemany(
                    "INSERT INTO payments (user_id, amount, currency, plan, method, source, "
                    "status) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
            if logins:
                ids = [rng.randint(1, max_user) for _ in range(logins)]
                cur.execute("UPDATE users SET last_active_at = now() WHERE id = ANY(%s)", (ids,))


def _reset_statements(admin: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def _db_side(admin: str) -> tuple[float, int, int]:
    """The exporter role's DB ms, statements, and refreshes (runs of the payments query)."""
    with psycopg.connect(admin) as conn:
        row = conn.execute(_DB_SIDE, (POSTGRES_EXPORTER_ROLE,)).fetchone()
    assert row is not None
    return float(row[0]), int(row[1]), int(row[2])


def _naive_alone(admin: str, url: str, rounds: int = 3) -> dict[str, float]:
    """The naive SQL run once directly, as the exporter role: median of `rounds`."""
    db_ms, statements, wall_ms = [], [], []
    for _ in range(rounds):
        _reset_statements(admin)
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            for sql in NAIVE_SQL.values():
                conn.execute(sql).fetchall()
        wall_ms.append((time.perf_counter() - started) * 1000)
        ms, calls, _ = _db_side(admin)
        db_ms.append(ms)
        statements.append(calls)
    return {
        "db_ms_per_refresh": statistics.median(db_ms),
        "statements_per_refresh": statistics.median(statements),
        "wall_ms": statistics.median(wall_ms),
    }


# --- scraping -----------------------------------------------------------------------------------


def _scrape(port: int, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _samples(body: bytes) -> Iterator[tuple[str, str, float]]:
    for match in _SAMPLE.finditer(body.decode(errors="replace")):
        name, labels, value = match.groups()
        try:
            yield name, labels or "", float(value)
        except ValueError:
            continue


def _is_complete(body: bytes) -> bool:
    """Every business metric has a sample, and no first fold is in progress."""
    names = set()
    for name, _, value in _samples(body):
        if name == BACKFILL_IN_PROGRESS and value:
            return False
        names.add(name)
    return set(METRICS) <= names


def _payments_by_status(body: bytes) -> dict[str, int]:
    totals: dict[str, float] = {}
    for name, labels, value in _samples(body):
        status = _STATUS.search(labels)
        if name == "finance_payments_total" and status:
            totals[status.group(1)] = totals.get(status.group(1), 0.0) + value
    return {status: round(value) for status, value in totals.items()}


def _first_complete(child: Child, deadline_seconds: float) -> float:
    """Seconds from the child's start to its first complete /metrics."""
    deadline = child.started + deadline_seconds
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{_tail(child)}")
        try:
            status, body = _scrape(child.port, {}, 60)
            if status == 200 and _is_complete(body):
                return time.monotonic() - child.started
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name}: no complete /metrics in {deadline_seconds:.0f} s")


@dataclass
class Phase:
    """One tool with N scrapers for a phase: what the scrapers saw and what it cost."""

    tool: str
    scrapers: int
    seconds: float
    pace_seconds: float | None = None  # None: a closed loop; else each scraper every pace s
    scrapes: int = 0
    failed: int = 0
    timeouts: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    cpu_ms_per_scrape: float | None = None
    client_cpu_ms_per_scrape: float | None = None  # the benchmark's own scraper threads
    refreshes: int = 0
    db_ms_per_refresh: float | None = None
    statements_per_refresh: float | None = None
    peak_rss_mb: float = 0.0
    errors: list[str] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime


def _own_cpu_seconds() -> float:
    """This process' CPU time (the scraper threads, the trickle and the sampling of the phase)."""
    times = os.times()
    return times.user + times.system


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


@dataclass
class Soak:
    """Ours for a long stretch under the trickle and paced scrapers: RSS over time."""

    minutes: float
    scrapers: int
    pace_seconds: float
    scrapes: int = 0
    failed: int = 0
    timeouts: int = 0
    p99_ms: float | None = None
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (minute, VmRSS MB)
    baseline_mb: float = 0.0  # after the first phase
    end_mb: float = 0.0
    peak_mb: float = 0.0
    growth_percent: float = 0.0


def _soak(child: Child, admin: str, minutes: float, scrapers: int, pace: float) -> Soak:
    """Paced phases of one minute back to back, VmRSS read after each; growth is the last
    reading over the first (the first minute is warm-up: caches and the first renders)."""
    soak = Soak(minutes, scrapers, pace)
    p99s = []
    for minute in range(1, max(2, round(minutes)) + 1):
        phase = _phase(child, admin, scrapers, 60.0, pace)
        soak.scrapes += phase.scrapes
        soak.failed += phase.failed
        soak.timeouts += phase.timeouts
        if phase.p99_ms is not None:
            p99s.append(phase.p99_ms)
        rss = _status_mb(child.process.pid, "VmRSS")
        soak.rss_mb.append((minute, round(rss, 1)))
        _log(f"{child.name}: soak minute {minute}, RSS {rss:.1f} MB, p99 {phase.p99_ms} ms")
    soak.baseline_mb = soak.rss_mb[0][1]
    soak.end_mb = soak.rss_mb[-1][1]
    soak.peak_mb = _peak_rss_mb(child.process.pid)
    soak.growth_percent = (soak.end_mb / soak.baseline_mb - 1) * 100
    soak.p99_ms = max(p99s) if p99s else None
    return soak


def _phase(
    child: Child, admin: str, scrapers: int, seconds: float, pace: float | None = None
) -> Phase:
    """`scrapers` threads for `seconds`: in a closed loop (each scrapes again as soon as its
    last scrape ends: the tool's saturation), or paced as Prometheus servers are (each scrapes
    every `pace` seconds at an offset of its own, drawn at random as Prometheus spreads its
    targets over the interval; a scrape that overruns its slot skips to the next)."""
    latencies: list[float] = []
    result = Phase(child.name, scrapers, seconds, pace)
    lock = threading.Lock()
    stop = threading.Event()

    def scraper() -> None:
        offset = random.uniform(0, pace) if pace else 0.0
        next_at = time.monotonic() + offset
        while not stop.is_set():
            if pace:
                if stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                next_at += pace * max(1, int((time.monotonic() - next_at) // pace) + 1)
            started = time.perf_counter()
            try:
                status, _ = _scrape(child.port, PROMETHEUS_HEADERS, SCRAPE_TIMEOUT_SECONDS)
                elapsed = time.perf_counter() - started
                with lock:
                    if elapsed > SCRAPE_TIMEOUT_SECONDS:
                        result.timeouts += 1
                    elif status != 200:
                        result.failed += 1
                        result.errors.append(f"HTTP {status}")
                    else:
                        latencies.append(elapsed)
            except TimeoutError:
                with lock:
                    result.timeouts += 1
            except OSError as err:
                with lock:
                    result.failed += 1
                    result.errors.append(type(err).__name__)
                time.sleep(0.05)  # a refused connection must not spin

    threads = [threading.Thread(target=scraper, daemon=True) for _ in range(scrapers)]
    _reset_statements(admin)
    cpu_before = _cpu_seconds(child.process.pid)
    client_before = _own_cpu_seconds()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    cpu = _cpu_seconds(child.process.pid) - cpu_before
    client_cpu = _own_cpu_seconds() - client_before
    db_ms, statements, refreshes = _db_side(admin)
    result.scrapes = len(latencies) + result.failed + result.timeouts
    result.errors = sorted(set(result.errors))[:5]
    if latencies:
        latencies.sort()
        result.p50_ms = statistics.median(latencies) * 1000
        result.p99_ms = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
        result.max_ms = latencies[-1] * 1000
    if result.scrapes:
        result.cpu_ms_per_scrape = cpu / result.scrapes * 1000
        result.client_cpu_ms_per_scrape = client_cpu / result.scrapes * 1000
    result.refreshes = refreshes
    if refreshes:
        result.db_ms_per_refresh = db_ms / refreshes
        result.statements_per_refresh = statements / refreshes
    result.peak_rss_mb = _peak_rss_mb(child.process.pid)
    return result


def _recount(child: Child, admin: str, trickle: Trickle, wait_seconds: float) -> dict[str, Any]:
    """With the trickle stopped: the tool's finance_payments_total by status against a
    direct count, polled until they match or `wait_seconds` pass (the tool's next refresh)."""
    trickle.stop()
    with psycopg.connect(admin) as conn:
        expected = {str(s): int(n) for s, n in conn.execute(_RECOUNT).fetchall()}
    deadline = time.monotonic() + wait_seconds
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            status, body = _scrape(child.port, {}, max(60.0, wait_seconds))
            if status == 200:
                seen = _payments_by_status(body)
                if seen == expected:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    trickle.start()
    return {"match": seen == expected, "expected": expected, "exported": seen}


# --- the run ----------------------------------------------------------------------------------


def _machine(admin: str) -> dict[str, str]:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(admin) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "postgres": str(row[0]) if row else "?",
        "python": platform.python_version(),
    }


@contextmanager
def _postgres(root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(root / "pg")
    server.init()
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(_STATEMENTS_CONF)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _run_tool(
    name: str,
    start: Callable[[], Child],
    admin: str,
    trickle: Trickle,
    args: argparse.Namespace,
    soak_minutes: float = 0.0,
) -> dict[str, Any]:
    _log(f"{name}: starting")
    child = start()
    try:
        first = _first_complete(child, args.start_timeout)
        _log(f"{name}: first complete /metrics after {first:.2f} s")
        phases = []
        runs = [(n, None) for n in args.scrapers] + [(n, args.pace) for n in args.paced_scrapers]
        for scrapers, pace in runs:
            how = f"paced every {pace:g} s" if pace else "in a loop"
            _log(f"{name}: phase with {scrapers} scrapers {how}, {args.phase_seconds:g} s")
            phase = _phase(child, admin, scrapers, args.phase_seconds, pace)
            _log(
                f"{name}: phase end, {phase.scrapes} scrapes, {phase.failed} failed, "
                f"{phase.timeouts} timed out, {phase.refreshes} refreshes"
            )
            phases.append(asdict(phase))
        figures: dict[str, Any] = {"first_complete_seconds": first, "phases": phases}
        if soak_minutes:
            scrapers = max(args.paced_scrapers or args.scrapers)
            _log(f"{name}: soak for {soak_minutes:g} minutes, {scrapers} scrapers paced")
            figures["soak"] = asdict(_soak(child, admin, soak_minutes, scrapers, args.pace))
        recount = _recount(child, admin, trickle, 2 * args.interval + args.start_timeout / 10)
        _log(f"{name}: recount {'matches' if recount['match'] else 'DIFFERS'}: {recount}")
        if child.process.poll() is not None:
            raise RuntimeError(f"{name} exited during the run:\n{_tail(child)}")
        figures["recount"] = recount
        return figures
    except Exception:
        _log(f"{name}: failed; its log ends with:\n{_tail(child)}")
        raise
    finally:
        _stop(child)


def _run_size(payments: int, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="finance-bench-peers-"))
    root.chmod(0o755)
    try:
        with _postgres(root) as server:
            _log(f"{payments:,} payments: seeding")
            started = time.monotonic()
            admin, url = _seed(server, payments)
            seed_seconds = time.monotonic() - started
            _log(f"{payments:,} payments: seeded in {seed_seconds:.1f} s")
            figures: dict[str, Any] = {
                "payments": payments,
                "seed_seconds": seed_seconds,
                "machine": _machine(admin),
                "naive_sql_alone": _naive_alone(admin, url),
                "tools": {},
            }
            starters: dict[str, Callable[[], Child]] = {
                "ours": lambda: _start_ours(url, root, args.interval),
                "query-exporter": lambda: _start_query_exporter(url, root, args.interval),
                "postgres_exporter": lambda: _start_postgres_exporter(
                    url, root, args.pg_exporter_cache_seconds
                ),
            }
            trickle = Trickle(admin, args.trickle_per_second, args.logins_per_second)
            trickle.start()
            try:
                soak = args.soak_minutes if payments == max(args.payments) else 0.0
                for tool in args.tools:
                    figures["tools"][tool] = _run_tool(
                        tool, starters[tool], admin, trickle, args, soak if tool == "ours" else 0.0
                    )
            finally:
                trickle.stop()
            figures["trickle"] = {"payments": trickle.payments, "errors": trickle.errors}
            return figures
    finally:
        _stop_all()
        shutil.rmtree(root, ignore_errors=True)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _print_table(figures: dict[str, Any], args: argparse.Namespace) -> None:
    m = figures["machine"]
    print(
        f"\n### {figures['payments']:,} payments\n\nmachine: {m['cpu']}, {m['cores']} cores, "
        f"kernel {m['kernel']}, PostgreSQL {m['postgres']}, Python {m['python']}; "
        f"seeded in {figures['seed_seconds']:.1f} s; trickle {args.trickle_per_second:g} "
        f"payments/s and {args.logins_per_second:g} logins/s; {args.phase_seconds:g} s per "
        f"phase, refresh interval {args.interval:g} s\n"
    )
    print(
        "| tool | scrapers | scrapes | failed | timed out | p50 ms | p99 ms | max ms "
        "| CPU ms per scrape | client CPU ms per scrape | DB ms per refresh "
        "| statements per refresh | refreshes | peak RSS MB | first complete /metrics s "
        "| recount |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for tool, result in figures["tools"].items():
        recount = "match" if result["recount"]["match"] else "**differs**"
        for p in result["phases"]:
            how = (
                f"{p['scrapers']} paced ({p['pace_seconds']:g} s)"
                if p["pace_seconds"]
                else (f"{p['scrapers']} in a loop")
            )
            print(
                f"| {tool} | {how} | {p['scrapes']:,} | {p['failed']} "
                f"| {p['timeouts']} | {_fmt(p['p50_ms'])} | {_fmt(p['p99_ms'])} "
                f"| {_fmt(p['max_ms'])} | {_fmt(p['cpu_ms_per_scrape'], 2)} "
                f"| {_fmt(p['client_cpu_ms_per_scrape'], 2)} "
                f"| {_fmt(p['db_ms_per_refresh'], 2)} | {_fmt(p['statements_per_refresh'])} "
                f"| {p['refreshes']} | {p['peak_rss_mb']:.0f} "
                f"| {result['first_complete_seconds']:.2f} | {recount} |"
            )
    naive = figures["naive_sql_alone"]
    print(
        f"| naive SQL alone | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a "
        f"| {naive['db_ms_per_refresh']:.2f} | {naive['statements_per_refresh']:.0f} "
        f"| 1 | n/a | n/a | n/a |",
        flush=True,
    )
    for tool, result in figures["tools"].items():
        if "soak" in result:
            soak = result["soak"]
            print(
                f"\n{tool}, soak of {soak['minutes']:g} minutes with {soak['scrapers']} scrapers "
                f"paced every {soak['pace_seconds']:g} s: {soak['scrapes']:,} scrapes, "
                f"{soak['failed']} failed, {soak['timeouts']} timed out, worst minute's p99 "
                f"{_fmt(soak['p99_ms'])} ms; RSS {soak['baseline_mb']:.1f} MB after the first "
                f"minute, {soak['end_mb']:.1f} MB at the end ({soak['growth_percent']:+.1f}%), "
                f"peak {soak['peak_mb']:.1f} MB",
                flush=True,
            )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--scrapers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--paced-scrapers",
        type=int,
        nargs="*",
        default=[32],
        help="scraper counts for paced phases, each scraper every --pace seconds",
    )
    parser.add_argument(
        "--pace", type=float, default=1.0, help="seconds between a paced scraper's scrapes"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="after the largest size's phases, run ours this long under paced scrapers and "
        "report its RSS each minute",
    )
    parser.add_argument("--phase-seconds", type=float, default=40.0)
    parser.add_argument(
        "--interval",
        type=float,
        default=15.0,
        help="refresh interval: ours' min_interval_seconds, query-exporter's query interval",
    )
    parser.add_argument("--trickle-per-second", type=float, default=20.0, help="new payments")
    parser.add_argument("--logins-per-second", type=float, default=5.0)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument(
        "--pg-exporter-cache-seconds",
        type=int,
        default=0,
        help="postgres_exporter's cache_seconds per query (0, its default: run on every scrape)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=1800.0,
        help="seconds a tool may take to its first complete /metrics",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    if "query-exporter" in args.tools:
        _ensure_query_exporter()
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "sizes": []}
    try:
        for payments in args.payments:
            figures = _run_size(payments, args)
            results["sizes"].append(figures)
            _print_table(figures, args)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        _stop_all()


if __name__ == "__main__":
    main()
