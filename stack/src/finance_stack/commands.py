"""The steps start-monitoring.sh calls, one Python call each: `python3 -m finance_stack STEP`.

Every step takes --root (the project folder) and --profiles (resolved once by `settings`), and
prints [+] progress and [x] failures on stderr; what a script reads goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from finance_stack import (
    archive,
    backup,
    captures,
    drill,
    health,
    images,
    pins,
    preflight,
    restore,
    secrets_archive,
    state,
    status,
    targets,
    urls,
    wait,
    workers,
)
from finance_stack.compose import ComposeError, Project, ps, read_project, run
from finance_stack.envfile import EnvFileError, Settings


def info(message: str) -> None:
    """A progress line."""
    print(f"[+] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    """A failure line."""
    print(f"[x] {message}", file=sys.stderr, flush=True)


def _parser(prog: str, *flags: str) -> argparse.ArgumentParser:
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
    args = _parser("preflight", "--dry-run").parse_args(argv)
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
    parser = _parser("pull", "--dry-run")
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
    args = _parser("targets", "--dry-run").parse_args(argv)
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


def _wait_healthy(
    root: Path, settings: Settings, project: Project, timeout_seconds: float
) -> wait.Verdict:
    return wait.wait(
        project,
        poll=lambda: ps(root, settings.environ),
        restarts=lambda containers: wait.restart_counts(containers, settings),
        timeout_seconds=timeout_seconds,
        progress=info,
    )


def cmd_wait(argv: list[str]) -> int:
    """Wait for every service to be healthy; on failure show each failed one's last log lines."""
    parser = _parser("wait")
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    project = project_for(args.root, args.profiles, settings)
    verdict = _wait_healthy(args.root, settings, project, args.timeout)
    if not verdict.failed:
        return 0
    for name, why in verdict.failed.items():
        fail(f"{name}: {why}; its last log lines:")
        sys.stderr.write(_logs(args.root, settings, name))
    fail("next: ./start-monitoring.sh logs SERVICE, fix, then ./start-monitoring.sh start again")
    return 1


def cmd_remember(argv: list[str]) -> int:
    """Keep the profiles `start` is starting, so every later command acts on the same stack."""
    args = _parser("remember").parse_args(argv)
    state.write(args.root, state.PROFILES_FILE, args.profiles + "\n")
    return 0


def cmd_forget(argv: list[str]) -> int:
    """After `stop`: the next command decides its profiles afresh."""
    args = _parser("forget").parse_args(argv)
    state.clear(args.root)
    return 0


def cmd_status(argv: list[str]) -> int:
    """One line per container, or --json."""
    args = _parser("status", "--json").parse_args(argv)
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
    args = _parser("health", "--json").parse_args(argv)
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
    args = _parser("urls").parse_args(argv)
    project = project_for(args.root, args.profiles, Settings(args.root))
    print("\n" + "\n".join(urls.lines(project)))
    return 0


def cmd_drill(argv: list[str]) -> int:
    """Fire a synthetic alert and follow it to the alert sink and back."""
    parser = _parser("drill", "--json")
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        result = drill.run(project, args.timeout, info)
    except drill.DrillError as err:
        fail(str(err))
        if err.step in ("deliver", "resolve"):
            for service in ("alertmanager", "alert-sink"):
                fail(f"last log lines of {service}:")
                sys.stderr.write(_logs(args.root, settings, service))
        if args.json:
            print(json.dumps({"ok": False, "step": err.step, "error": str(err)}))
        return 1
    except ComposeError as err:
        fail(str(err))
        return 1
    if args.json:
        print(json.dumps({"ok": True, **asdict(result)}))
    return 0


# What a backup or restore reports as a failure: each message says what failed and what to do.
_OPERATION_ERRORS = (
    backup.BackupError,
    restore.RestoreError,
    archive.ArchiveError,
    workers.EngineError,
    workers.WorkerError,
    captures.CaptureError,
    secrets_archive.SecretsArchiveError,
    ComposeError,
    OSError,
)


def _stores(text: str) -> tuple[str, ...]:
    return tuple(name for name in text.split(",") if name)


def _states(root: Path, settings: Settings) -> dict[str, str]:
    return {c.service: c.state for c in ps(root, settings.environ)}


def cmd_backup(argv: list[str]) -> int:
    """Archive every store of the running stack (docs/operations.md)."""
    parser = _parser("backup", "--json", "--gzip", "--include-secrets")
    parser.add_argument("--to", type=Path, help="the archive's folder (default: ROOT/backups)")
    parser.add_argument("--encrypt-key", type=Path, help="include the secrets, encrypted")
    parser.add_argument("--only", type=_stores, default=(), help="stores, comma-separated")
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        facts = pins.read(args.root, settings)
        options = backup.Options(
            to=(args.to or args.root / "backups").resolve(),
            gzip=args.gzip,
            encrypt_key=args.encrypt_key,
            include_secrets=args.include_secrets,
            only=args.only,
        )
        path, manifest = backup.run(
            args.root,
            project,
            _states(args.root, settings),
            workers.ComposeEngine(args.root, settings, project),
            facts,
            pins.stack_version(args.root, facts.pins),
            options,
            info,
        )
    except _OPERATION_ERRORS as err:
        fail(f"backup failed, no archive written: {err}")
        return 1
    if args.json:
        print(json.dumps(backup.summary(path, manifest), indent=2, sort_keys=True))
    return 0


def _confirmed(chosen: restore.Plan) -> bool:
    names = ", ".join(store.name for store in chosen.stores)
    if not sys.stdin.isatty():
        fail(f"restore replaces the data of {names}: re-run with --yes to go on")
        return False
    answer = input(
        f"restore replaces the data of {names} (their services stop a moment). Type yes: "
    )
    return answer.strip() == "yes"


def cmd_restore(argv: list[str]) -> int:
    """Verify an archive, put its stores back, check they hold what was backed up."""
    parser = _parser("restore", "--json", "--yes")
    parser.add_argument("archive", type=Path)
    parser.add_argument("--only", type=_stores, default=(), help="stores, comma-separated")
    parser.add_argument("--decrypt-key", type=Path, help="the key the secrets were encrypted with")
    parser.add_argument("--timeout", type=float, required=True, help="seconds to wait for health")
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        facts = pins.read(args.root, settings)
        states = _states(args.root, settings)
        chosen = restore.plan(
            args.archive, facts.pins, project, states, args.only, args.decrypt_key
        )
        count = sum(len(s.get("files", [])) for s in chosen.manifest["stores"].values())
        info(f"{args.archive}: verified: manifest, pins, {count} files and their checksums")
        if not args.yes and not _confirmed(chosen):
            return 2
        engine = workers.ComposeEngine(args.root, settings, project)

        def wait_healthy(services: list[str]) -> dict[str, str]:
            part = {name: project.services[name] for name in services}
            sub = Project(project.name, project.profiles, part)
            return _wait_healthy(args.root, settings, sub, args.timeout).failed

        checks = restore.run(chosen, project, engine, wait_healthy, info)
    except _OPERATION_ERRORS as err:
        fail(f"restore failed: {err}")
        return 1
    for check in checks:
        (info if check.ok else fail)(f"check {check.store}: {check.detail}")
    if args.json:
        print(
            json.dumps(
                {"archive": str(args.archive), "checks": [asdict(c) for c in checks]}, indent=2
            )
        )
    return 0 if all(check.ok for check in checks) else 1
