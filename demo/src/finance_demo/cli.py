"""Command line: `finance-demo migrate`, `seed`, `setup` (the demo-setup job), platform, load,
fault."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

from finance_demo import setup as demo_setup
from finance_demo.migrate import migrate
from finance_demo.platform import cli as platform_cli
from finance_demo.seed import MAX_PAYMENTS, SeedPlan, seed_postgres, seed_redis

_EPILOG = """environment:
  DATABASE_URL, DATABASE_URL_FILE   Postgres connection URL, or a file holding it
  REDIS_URL, REDIS_URL_FILE         Redis connection URL, or a file holding it (seed, platform)
  OTEL_EXPORTER_OTLP_ENDPOINT       platform: send traces over OTLP/HTTP there (else kept local)

exit status: 0 ok, 1 error, 2 usage error
"""


class UsageError(Exception):
    """A missing or conflicting setting: exit status 2."""


def _payments(text: str) -> int:
    """Accept 10000 as well as 1e4."""
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != int(value) or not 1 <= value <= MAX_PAYMENTS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAYMENTS}")
    return int(value)


def _anchor(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finance-demo",
        description="Reference data model of the AI Finance platform: migrations and seed data.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("migrate", help="apply the schema migrations")
    run.add_argument("--database-url", help="Postgres URL (default: DATABASE_URL)")
    seed = commands.add_parser("seed", help="fill an empty, migrated database with seed data")
    seed.add_argument("--database-url", help="Postgres URL (default: DATABASE_URL)")
    seed.add_argument("--redis-url", help="Redis URL (default: REDIS_URL); else Redis is skipped")
    seed.add_argument("--payments", type=_payments, required=True, help="payment rows, e.g. 1e5")
    seed.add_argument(
        "--seed", type=platform_cli.seed_value, default=42, help="random seed (default 42)"
    )
    seed.add_argument(
        "--anchor", type=_anchor, help="ISO 8601 'now' the history ends at (default: now)"
    )
    seed.add_argument("--json", action="store_true", help="print the counts as JSON")
    setup = commands.add_parser("setup", help="set up and seed the stack's demo datastores")
    setup.add_argument("--secrets", type=Path, default=Path("/run/secrets"), help="secret files")
    setup.add_argument("--payments", type=_payments, default=20_000, help="payment rows to seed")
    platform_cli.add_parsers(commands)
    return parser


def _setting(flag: str | None, name: str, environ: Mapping[str, str]) -> str | None:
    """The flag, else NAME, else the contents of the file named by NAME_FILE."""
    if flag:
        return flag
    file_name = environ.get(f"{name}_FILE")
    if file_name and environ.get(name):
        raise UsageError(f"set {name} or {name}_FILE, not both")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError as err:
            raise UsageError(f"{name}_FILE: cannot read {file_name}: {err.strerror}") from None
    return environ.get(name) or None


def _progress(message: str) -> None:
    print(f"[+] {message}", file=sys.stderr, flush=True)


def _print_counts(result: Mapping[str, Mapping[str, int]]) -> None:
    for section, counts in result.items():
        heading = "table" if section == "postgres" else "redis key family"
        width = max(len(heading), *(len(name) for name in counts))
        print(f"{heading:<{width}}  {'rows' if section == 'postgres' else 'items':>10}")
        for name, count in counts.items():
            print(f"{name:<{width}}  {count:>10}")
        print()


def _seed(args: argparse.Namespace, database_url: str, redis_url: str | None) -> None:
    if args.anchor:
        plan = SeedPlan(payments=args.payments, seed=args.seed, anchor=args.anchor)
    else:
        plan = SeedPlan(payments=args.payments, seed=args.seed)
    _progress(f"seed {plan.seed}, anchor {plan.anchor.isoformat()}, {plan.payments} payments")
    started = time.monotonic()
    result: dict[str, dict[str, int]] = {}
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        result["postgres"] = seed_postgres(conn, plan, _progress)
        if redis_url:
            _progress("writing redis keys...")
            client = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=10)
            try:
                result["redis"] = seed_redis(client, conn, plan)
            finally:
                client.close()
    _progress(f"done in {time.monotonic() - started:.1f}s")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_counts(result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the finance-demo command."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits 2 on usage errors and 0 for --help; return it instead of raising.
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command == "setup":
        return _setup(args)
    if args.command in ("platform", "load"):
        return _platform(args)
    if args.command == "fault":
        return platform_cli.run_fault(args)
    try:
        database_url = _setting(args.database_url, "DATABASE_URL", os.environ)
        redis_url = None
        if args.command == "seed":
            redis_url = _setting(args.redis_url, "REDIS_URL", os.environ)
        if not database_url:
            raise UsageError("no database: pass --database-url or set DATABASE_URL")
    except UsageError as err:
        print(f"finance-demo: error: {err}", file=sys.stderr)
        return 2
    try:
        if args.command == "migrate":
            with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
                applied = migrate(conn)
            print(f"applied: {', '.join(applied)}" if applied else "up to date")
        else:
            _seed(args, database_url, redis_url)
    except (ValueError, psycopg.Error, redis.RedisError, OSError) as err:
        print(f"finance-demo: error: {_first_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("finance-demo: interrupted", file=sys.stderr)
        return 1
    return 0


def _setup(args: argparse.Namespace) -> int:
    """The demo-setup job (setup.py)."""
    try:
        demo_setup.setup_demo(args.secrets, args.payments, _progress)
    except (ValueError, psycopg.Error, redis.RedisError, OSError) as err:
        print(f"finance-demo: error: {_first_line(err)}", file=sys.stderr)
        return 1
    return 0


def _platform(args: argparse.Namespace) -> int:
    """The demo platform, or the load against it (platform/cli.py)."""
    if args.command == "load":
        return platform_cli.run_load(args)
    try:
        database_url = _setting(args.database_url, "DATABASE_URL", os.environ)
        redis_url = _setting(args.redis_url, "REDIS_URL", os.environ)
        if not database_url or not redis_url:
            raise UsageError("the platform needs DATABASE_URL and REDIS_URL (or *_FILE)")
    except UsageError as err:
        print(f"finance-demo: error: {err}", file=sys.stderr)
        return 2
    return platform_cli.run_platform(args, database_url, redis_url, dict(os.environ))


def _first_line(err: BaseException) -> str:
    """The error's first line (not the server's query context), with a hint where one helps."""
    text = (str(err).strip() or type(err).__name__).splitlines()[0]
    if isinstance(err, psycopg.errors.UndefinedTable):
        text += " (is the database migrated? run: finance-demo migrate)"
    return text


if __name__ == "__main__":
    sys.exit(main())
