"""finance-kuma-setup: the kuma-setup job. Composition root: argv and environment, wiring, report.

Steps, each safe to repeat: wait for Kuma; create the admin account on first run (its password
from the secret file) and log in; apply the monitors file; make or keep the API key for
/metrics. Human lines go to stderr, `--json` prints the report on stdout. Exit status: 0 done,
1 failed (the message says what to do), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from uptime_kuma_api import UptimeKumaException

from finance_kuma import apikey, monitors, provision
from finance_kuma.client import Clock, Connect, KumaError, connect, library_client
from finance_kuma.report import Report

# Where docker-compose.yml's kuma-setup service puts things.
DEFAULT_URL = "http://uptime-kuma:3001"
DEFAULT_MONITORS = "/etc/kuma-setup/monitors.yml"
DEFAULT_PASSWORD_FILE = "/run/secrets/kuma_admin_password"
DEFAULT_KEY_FILE = "/run/secrets/uptime-kuma/api_key"
# Those files in the project folder, as a person finds them.
HOST_NAMES = {
    DEFAULT_PASSWORD_FILE: "secrets/kuma_admin_password",
    DEFAULT_KEY_FILE: "secrets/uptime-kuma/api_key",
}
# Kuma is healthy before the job starts (depends_on); this covers a restart in between.
DEFAULT_WAIT_SECONDS = 120.0
PROFILES_VARIABLE = "KUMA_PROFILES"


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finance-kuma-setup",
        description="Apply the monitors file to Uptime Kuma 1.23, create its admin account on"
        " first run, and make (once) the API key Prometheus scrapes /metrics with.",
        epilog=f"environment: {PROFILES_VARIABLE}, the compose profiles that run (as"
        " COMPOSE_PROFILES; unset: every monitor of the file)\n\n"
        "exit status: 0 done, 1 failed, 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"Kuma's URL (default {DEFAULT_URL})")
    parser.add_argument("--monitors", type=Path, default=Path(DEFAULT_MONITORS))
    parser.add_argument("--password-file", default=DEFAULT_PASSWORD_FILE)
    parser.add_argument("--key-file", default=DEFAULT_KEY_FILE)
    parser.add_argument("--wait-seconds", type=float, default=DEFAULT_WAIT_SECONDS)
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    return parser


def _progress(message: str) -> None:
    print(f"[+] {message}", file=sys.stderr, flush=True)


def _password(path: str) -> str:
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise KumaError(
            f"cannot read the admin password {HOST_NAMES.get(path, path)} ({err.strerror}):"
            " ./start-monitoring.sh start generates it"
        ) from err
    if not password:
        raise KumaError(f"{HOST_NAMES.get(path, path)} is empty: delete it and run start again")
    return password


def run(
    args: argparse.Namespace,
    profiles: frozenset[str],
    make: Connect,
    clock: Clock,
    accepts: apikey.Accepts,
) -> Report:
    """One provisioning run against the Kuma `make` connects to."""
    specs = monitors.load(args.monitors)
    password = _password(args.password_file)
    client = connect(make, args.url, args.wait_seconds, clock, _progress)
    try:
        shown = HOST_NAMES.get(args.password_file, args.password_file)
        admin_created = provision.sign_in(client, password, shown)
        changes = provision.apply_monitors(client, specs, profiles)
        key = apikey.ensure_api_key(client, Path(args.key_file), accepts)
    except UptimeKumaException as err:
        raise KumaError(f"Uptime Kuma at {args.url} refused a call: {err}") from err
    finally:
        client.disconnect()
    return Report(
        url=args.url,
        admin_created=admin_created,
        monitors=changes,
        api_key=key,
        key_file=HOST_NAMES.get(args.key_file, args.key_file),
        password_file=shown,
    )


def main(
    argv: Sequence[str] | None = None,
    make: Connect = library_client,
    clock: Clock | None = None,
    accepts: apikey.Accepts | None = None,
) -> int:
    """Parse argv, run, print the report; the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    profiles = monitors.parse_profiles(os.environ.get(PROFILES_VARIABLE, monitors.ALL_PROFILES))
    try:
        report = run(
            args,
            profiles,
            make,
            clock or _SystemClock(),
            accepts or apikey.metrics_check(args.url),
        )
    except (KumaError, monitors.MonitorsFileError) as err:
        print(f"[x] kuma-setup: {err}", file=sys.stderr)
        return 1
    for line in report.lines():
        _progress(line)
    if args.json:
        print(report.to_json())
    return 0
