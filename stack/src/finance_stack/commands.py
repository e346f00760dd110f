"""The steps start-monitoring.sh calls, one Python call each: `python3 -m finance_stack STEP`.

Every step takes --root (the project folder) and --profiles (resolved once by `settings`), and
prints [+] progress and [x] failures on stderr; what a script reads goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from finance_stack import health, images, preflight, state, status, targets, urls, wait
from finance_stack.compose import ComposeError, Project, ps, read_project, run
from finance_stack.envfile import EnvFileError, Settings


def info(message: str) -> None:
    """A progress line."""
    print(f"[+] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    """A failure line."""
    print(f"[x] {message}", file=sys.stderr, flush=True)


def step_parser(prog: str, *flags: str) -> argparse.ArgumentParser:
    """A step's arguments: --root and --profiles, and `flags` as switches."""
    parser = argparse.ArgumentParser(prog=f"finance_stack {prog}")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--profiles", required=True)
    for flag in flags:
        parser.add_argument(flag, action="store_true")
    return parser


def project_for(root: Path, profiles: str, settings: Settings) -> Project:
    """The project `start` rendered for these profiles, else a fresh rendering."""
    kept = state.read(root, state.PROJECT_FILE)
    if kept:
        project = Project.from_json(kept)
        if project.profiles == profiles:
            return project
    return read_project(root, profiles, settings)


def cmd_preflight(argv: list[str]) -> int:
    """Every check of start; nothing changes when one fails. Prints, for bash's eval, the
    OTLP_ENDPOINT the services get when Jaeger runs and the user has not chosen one, and
    app-redis-exporter's address and user (never its password) when a Redis URL is set."""
    args = step_parser("preflight", "--dry-run").parse_args(argv)
    try:
        settings = Settings(args.root)
        running = preflight.containers_running(args.root, settings)
        project, notes = preflight.run(
            args.root, settings, args.profiles, running, fix=not args.dry_run
        )
    except (preflight.PreflightError, EnvFileError, ValueError) as err:
        fail(str(err))
        return 1
    for note in notes:
        info(note)
    for name, value in preflight.check_datastores(settings).items():
        print(f"export {name}={shlex.quote(value)}")
    endpoint = preflight.otlp_endpoint(project, settings)
    if endpoint:
        print(f"export OTLP_ENDPOINT={shlex.quote(endpoint)}")
        info(f"traces: OTLP_ENDPOINT={endpoint} (Jaeger runs; set OTLP_ENDPOINT to choose)")
    info(f"preflight: {len(project.services)} services, ports free, memory and disk enough")
    return 0


def cmd_pull(argv: list[str]) -> int:
    """Pull the images the project runs and does not build."""
    parser = step_parser("pull", "--dry-run")
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        pulled = images.pull(project, settings, info, args.dry_run)
    except (images.PullError, ComposeError) as err:
        fail(str(err))
        return 1
    if pulled and not args.dry_run:
        info(f"pulled {pulled} image(s)")
    return 0


def cmd_targets(argv: list[str]) -> int:
    """Write prometheus/targets/ from the services the profiles run."""
    args = step_parser("targets", "--dry-run").parse_args(argv)
    settings = Settings(args.root)
    project = project_for(args.root, args.profiles, settings)
    if args.dry_run:
        print(json.dumps(targets.scrape_targets(project), indent=2))
        return 0
    folder = args.root / "prometheus" / "targets"
    try:
        summary = targets.write_targets(project, folder)
    except OSError as err:
        fail(f"could not write Prometheus' scrape targets into {folder}: {err.strerror}")
        return 1
    info(f"scrape targets: {' '.join(line.split()[0] for line in summary)} (prometheus/targets/)")
    return 0


def _logs(root: Path, settings: Settings, service: str) -> str:
    try:
        return run(root, ["logs", "--no-color", "--tail", "20", service], settings.environ)
    except ComposeError as err:
        return str(err)


def wait_healthy(
    root: Path, settings: Settings, project: Project, timeout_seconds: float
) -> wait.Verdict:
    """Wait for the project's services to be healthy (finance_stack.wait), progress on stderr."""
    return wait.wait(
        project,
        poll=lambda: ps(root, settings.environ),
        restarts=lambda containers: wait.restart_counts(containers, settings),
        timeout_seconds=timeout_seconds,
        progress=info,
    )


def cmd_wait(argv: list[str]) -> int:
    """Wait for every service to be healthy; on failure show each failed one's last log lines."""
    parser = step_parser("wait")
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    project = project_for(args.root, args.profiles, settings)
    verdict = wait_healthy(args.root, settings, project, args.timeout)
    if not verdict.failed:
        return 0
    for name, why in verdict.failed.items():
        fail(f"{name}: {why}; its last log lines:")
        sys.stderr.write(_logs(args.root, settings, name))
    fail("next: ./start-monitoring.sh logs SERVICE, fix, then ./start-monitoring.sh start again")
    return 1


def cmd_remember(argv: list[str]) -> int:
    """Keep the profiles `start` is starting, so every later command acts on the same stack."""
    args = step_parser("remember").parse_args(argv)
    state.write(args.root, state.PROFILES_FILE, args.profiles + "\n")
    return 0


def cmd_forget(argv: list[str]) -> int:
    """After `stop`: the next command decides its profiles afresh."""
    args = step_parser("forget").parse_args(argv)
    state.clear(args.root)
    return 0


def cmd_status(argv: list[str]) -> int:
    """One line per container, or --json."""
    args = step_parser("status", "--json").parse_args(argv)
    settings = Settings(args.root)
    try:
        containers = ps(args.root, settings.environ)
    except ComposeError as err:
        fail(str(err))
        return 1
    text, code = status.render(containers, args.json)
    sys.stdout.write(text)
    if not containers:
        name = project_for(args.root, args.profiles, settings).name
        fail(status.empty_message(name))
    return code


def cmd_health(argv: list[str]) -> int:
    """Each component's own health; rc 1 if any is unhealthy."""
    args = step_parser("health", "--json").parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        containers = ps(args.root, settings.environ)
    except ComposeError as err:
        fail(str(err))
        return 1
    results = health.check(project, containers, args.root / "secrets")
    sys.stdout.write(health.render(results, args.json))
    return 0 if results and all(r.healthy for r in results) else 1


def cmd_urls(argv: list[str]) -> int:
    """Where everything is, once the stack is up."""
    args = step_parser("urls").parse_args(argv)
    project = project_for(args.root, args.profiles, Settings(args.root))
    print("\n" + "\n".join(urls.lines(project)))
    return 0
