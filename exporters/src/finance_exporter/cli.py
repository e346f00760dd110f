"""Command line: flags and environment to Settings, logging, wiring, serving or --check."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from opentelemetry.sdk.trace import TracerProvider

from finance_exporter import logs, tracing
from finance_exporter.backfill import Backfill
from finance_exporter.check import check_online
from finance_exporter.checkpoint import CheckpointStore
from finance_exporter.config import DEFAULT_PORTS, Options, Settings, load_settings, mask_url
from finance_exporter.errors import ConfigError
from finance_exporter.http import ExporterServer
from finance_exporter.loader import QueryLoader
from finance_exporter.snapshot import Clock, Refresher, SystemClock
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.sources.redis import RedisSource

logger = logging.getLogger("finance_exporter")

_EPILOG = """environment:
  DATABASE_URL, DATABASE_URL_FILE   Postgres connection URL, or a file holding it
  REDIS_URL, REDIS_URL_FILE         Redis connection URL, or a file holding it
  EXPORTER_CONFIG                   query file (same as --config)
  EXPORTER_LISTEN                   HOST:PORT to serve on (same as --listen)
  EXPORTER_CHECKPOINT_DIR           where incremental totals are checkpointed
  EXPORTER_LOG_LEVEL                DEBUG, INFO, WARNING or ERROR
  OTEL_EXPORTER_OTLP_ENDPOINT       OTLP/HTTP base URL: send a span per refresh there (else none)

exit status: 0 ok, 1 invalid configuration or failed check, 2 usage error
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finance-exporter",
        description="Serve business metrics read from Postgres and Redis to Prometheus.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("exporter", choices=sorted(DEFAULT_PORTS), help="which exporter to run")
    parser.add_argument("--config", help="YAML file overriding the built-in queries")
    parser.add_argument("--listen", help="HOST:PORT (default 127.0.0.1 and 9101/9102/9103)")
    parser.add_argument("--checkpoint-dir", help="directory for the incremental-totals checkpoint")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--connect",
        action="store_true",
        help="with --check: also run every query against the datastores (returning no rows)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the finance-exporter command."""
    args = _parser().parse_args(argv)
    options = Options(
        exporter=args.exporter,
        environ=dict(os.environ),
        config_file=args.config,
        listen=args.listen,
        checkpoint_dir=args.checkpoint_dir,
        log_level=args.log_level,
    )
    try:
        settings = load_settings(options)
    except ConfigError as err:
        for problem in err.details:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    if args.check:
        return _check(settings, connect=args.connect)
    logs.configure(f"finance-exporter-{settings.exporter}", settings.log_level)
    return serve(settings)


def _check(settings: Settings, connect: bool) -> int:
    problems = check_online(settings) if connect else []
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    where = "checked against the datastores" if connect else "checked offline"
    print(f"ok: {settings.exporter} exporter, {len(settings.queries)} queries, {where}")
    return 0


@dataclass
class Exporter:
    """A wired exporter: its HTTP server, its background fold and the clients to close after."""

    server: ExporterServer
    postgres: PostgresSource | None
    redis: RedisSource | None
    tracer_provider: TracerProvider | None = None
    backfill: Backfill | None = None

    def wait_backfilled(self, timeout_seconds: float) -> bool:
        """Wait until every first fold is complete or failing; False if the time ran out."""
        return self.backfill is None or self.backfill.wait_settled(timeout_seconds)

    def close(self) -> None:
        """Close the listening socket, the fold and the datastore connections, flush the spans."""
        self.server.server_close()
        if self.backfill is not None:
            self.backfill.stop()
        if self.postgres is not None:
            self.postgres.close()
        if self.redis is not None:
            self.redis.close()
        tracing.shutdown(self.tracer_provider)


def build(
    settings: Settings, clock: Clock, tracer_provider: TracerProvider | None = None
) -> Exporter:
    """Wire sources, checkpoint, loader, refresher and HTTP server from `settings`.

    Spans go to `tracer_provider` if given (tests record them in memory), else to the OTLP
    endpoint of `settings`, else nowhere.
    """
    name = f"finance-exporter-{settings.exporter}"
    provider = tracer_provider or tracing.tracer_provider(settings.exporter, settings.otlp_endpoint)
    postgres = None
    if settings.database_url and settings.uses("postgres"):
        postgres = PostgresSource(settings.database_url, name)
    redis = None
    if settings.redis_url and settings.uses("redis"):
        redis = RedisSource(settings.redis_url, settings.redis_timeout_seconds)
    checkpoint = None
    if settings.checkpoint_dir is not None:
        checkpoint = settings.checkpoint_dir / f"{settings.exporter}.json"
    store = CheckpointStore(checkpoint)
    backfill = None
    if postgres is not None and any(q.incremental for q in settings.queries):
        # Its own connection: the first folds run on their own thread (backfill.py).
        backfill = Backfill(
            PostgresSource(settings.database_url or "", f"{name}-backfill"),
            store,
            clock,
            settings.backfill_timeout_seconds,
        )
    loader = QueryLoader(
        settings.queries,
        postgres,
        redis,
        store,
        clock,
        exporter=settings.exporter,
        tracer=tracing.get_tracer(provider),
        backfill=backfill,
    )
    refresher = Refresher(
        loader,
        loader.initial(),
        settings.min_interval_seconds,
        clock,
        on_published=loader.save_checkpoint,
    )
    server = ExporterServer(
        (settings.listen_host, settings.listen_port),
        refresher,
        clock,
        settings.scrape_timeout_seconds,
        settings.scrape_timeout_offset_seconds,
    )
    if backfill is not None:
        backfill.on_done = refresher.expire
        backfill.start_thread()
    return Exporter(
        server=server,
        postgres=postgres,
        redis=redis,
        tracer_provider=provider,
        backfill=backfill,
    )


def serve(settings: Settings) -> int:
    """Serve /metrics and /healthz until SIGTERM or SIGINT."""
    exporter = build(settings, SystemClock())
    server = exporter.server

    def stop(signum: int, _frame: FrameType | None) -> None:
        # The folds first: none begins after "stopping" (the running one ends, checkpointed).
        if exporter.backfill is not None:
            exporter.backfill.halt()
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(
        "listening",
        extra={
            "url.full": f"http://{settings.listen_host}:{server.server_address[1]}/metrics",
            "queries": [q.name for q in settings.queries],
            "postgres": mask_url(settings.database_url),
            "redis": mask_url(settings.redis_url),
            "traces": mask_url(settings.otlp_endpoint),
        },
    )
    try:
        server.serve_forever()
    finally:
        exporter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
