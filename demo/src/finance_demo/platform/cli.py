"""The `platform`, `load` and `fault` commands: their arguments, logging and run (cli.py
dispatches)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from finance_demo import load
from finance_demo.platform import app, logs
from finance_demo.seed import MAX_SEED


def seed_value(text: str) -> int:
    """A --seed argument (the seed command's and the load's): a whole number, 0 to MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= value <= 200:
        raise argparse.ArgumentTypeError("must be from 0.1 to 200 requests per second")
    return value


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `platform` and `load` subcommands."""
    run = commands.add_parser("platform", help="run the demo platform's five services")
    run.add_argument("--listen-host", default="0.0.0.0", help="address (default 0.0.0.0)")
    run.add_argument(
        "--base-port",
        type=int,
        default=app.DEFAULT_BASE_PORT,
        help="api-gateway's port; payment, trading, market-data, user-management follow "
        f"(default {app.DEFAULT_BASE_PORT})",
    )
    run.add_argument("--database-url", help="Postgres URL (default: DATABASE_URL)")
    run.add_argument("--redis-url", help="Redis URL (default: REDIS_URL)")
    send = commands.add_parser("load", help="send a steady synthetic load to the gateway")
    gateway = f"http://127.0.0.1:{app.ports()['api-gateway']}"
    send.add_argument("--target", default=gateway, help="the gateway's URL")
    send.add_argument("--rate", type=_rate, default=load.DEFAULT_RATE, help="requests/second")
    send.add_argument("--seed", type=seed_value, default=42, help="seed of the request mix")
    send.add_argument("--duration", type=float, help="stop after this many seconds")
    send.add_argument("--report-seconds", type=float, default=30.0, help="progress interval")
    send.add_argument("--heartbeat", type=Path, help="file touched after every request")
    fault = commands.add_parser(
        "fault",
        help="show or set a running service's fault knobs (from inside its container)",
        description="Read or replace the fault knobs of one service of the platform running on"
        " this machine, through its /-/faults (loopback only), and print them as JSON.",
        epilog="exit status: 0 ok, 1 the service did not answer, 2 refused (usage)",
    )
    fault.add_argument("service", choices=app.SERVICES)
    change = fault.add_mutually_exclusive_group()
    change.add_argument(
        "--put", metavar="JSON", help="replace its knobs, e.g. '{\"error_ratio\": 1}'; omitted: off"
    )
    change.add_argument("--clear", action="store_true", help="turn every knob off")
    fault.add_argument(
        "--base-port", type=int, default=app.DEFAULT_BASE_PORT, help="api-gateway's port"
    )


def run_load(args: argparse.Namespace) -> int:
    """Run the load with the parsed arguments."""
    logs.configure(default_service="demo-load")
    settings = load.LoadSettings(
        target=args.target,
        rate=args.rate,
        seed=args.seed,
        duration_seconds=args.duration,
        report_seconds=args.report_seconds,
        heartbeat=args.heartbeat,
    )
    return load.run(settings)


def run_platform(
    args: argparse.Namespace, database_url: str, redis_url: str, environ: Mapping[str, str]
) -> int:
    """Run the platform with the parsed arguments and the resolved datastore URLs."""
    logs.configure()
    settings = app.PlatformSettings(
        database_url=database_url,
        redis_url=redis_url,
        host=args.listen_host,
        base_port=args.base_port,
        environ=environ,
    )
    return app.run(settings)


def run_fault(args: argparse.Namespace) -> int:
    """GET or PUT the service's /-/faults and print the knobs it answers with."""
    url = f"http://127.0.0.1:{app.ports(args.base_port)[args.service]}/-/faults"
    body = "{}" if args.clear else args.put
    if body is not None:
        try:
            json.loads(body)
        except ValueError as err:
            print(f"finance-demo fault: error: --put is not JSON: {err}", file=sys.stderr)
            return 2
    data = body.encode() if body is not None else None
    request = urllib.request.Request(
        url, data, {"Content-Type": "application/json"}, method="PUT" if data else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(response.read().decode().strip())
    except urllib.error.HTTPError as err:
        answer = err.read().decode(errors="replace").strip()
        print(
            f"finance-demo fault: error: {args.service} refused ({err.code}): {answer}",
            file=sys.stderr,
        )
        return 2
    except OSError as err:
        print(
            f"finance-demo fault: error: {args.service} at {url} did not answer: {err}",
            file=sys.stderr,
        )
        return 1
    return 0
