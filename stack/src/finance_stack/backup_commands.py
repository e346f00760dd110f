"""The `backup` and `restore` steps start-monitoring.sh calls (docs/operations.md): arguments,
the project and its pins read once, the engine, and the report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from finance_stack import (
    archive,
    backup,
    captures,
    engine,
    pins,
    restore,
    secrets_archive,
    state,
    upgrade,
    workers,
)
from finance_stack.commands import fail, info, project_for, step_parser, wait_healthy
from finance_stack.compose import ComposeError, Container, Project, ps
from finance_stack.envfile import Settings

# What a backup or restore reports as a failure: each message says what failed and what to do.
_OPERATION_ERRORS = (
    backup.BackupError,
    restore.RestoreError,
    archive.ArchiveError,
    engine.EngineError,
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


def _backup_parser(prog: str, *flags: str) -> argparse.ArgumentParser:
    parser = step_parser(prog, "--gzip", "--include-secrets", *flags)
    parser.add_argument("--to", type=Path, help="the archive's folder (default: ROOT/backups)")
    parser.add_argument("--encrypt-key", type=Path, help="include the secrets, encrypted")
    parser.add_argument("--only", type=_stores, default=(), help="stores, comma-separated")
    return parser


def _archive(
    args: argparse.Namespace,
    settings: Settings,
    project: Project,
    containers: list[Container],
    facts: pins.ComposeFacts,
    version: str,
) -> tuple[Path, dict[str, Any]]:
    options = backup.Options(
        to=(args.to or args.root / "backups").resolve(),
        gzip=args.gzip,
        encrypt_key=args.encrypt_key,
        include_secrets=args.include_secrets,
        only=args.only,
    )
    return backup.run(
        args.root,
        project,
        {c.service: c.state for c in containers},
        engine.ComposeEngine(args.root, settings, project),
        facts,
        version,
        options,
        info,
    )


def _stack(
    args: argparse.Namespace, settings: Settings
) -> tuple[Project, pins.ComposeFacts, list[Container]]:
    """The project, the checkout's pins and volumes, and every container of the project."""
    project = project_for(args.root, args.profiles, settings)
    return project, pins.read(args.root, settings), ps(args.root, settings.environ)


def cmd_backup(argv: list[str]) -> int:
    """Archive every store of the running stack (docs/operations.md)."""
    args = _backup_parser("backup", "--json").parse_args(argv)
    settings = Settings(args.root)
    try:
        project, facts, containers = _stack(args, settings)
        drifted = pins.drift(facts.pins, [c for c in containers if c.state == "running"])
        if drifted:
            fail(f"backup refused, no archive written: {pins.drift_message(drifted)}")
            return 1
        version = pins.stack_version(args.root, facts.pins)
        path, manifest = _archive(args, settings, project, containers, facts, version)
    except _OPERATION_ERRORS as err:
        fail(f"backup failed, no archive written: {err}")
        return 1
    if args.json:
        print(json.dumps(backup.summary(path, manifest), indent=2, sort_keys=True))
    return 0


def cmd_upgrade_backup(argv: list[str]) -> int:
    """Before an upgrade: say which images change, and archive every store under the pins
    the running stack is at (finance_stack.upgrade). Prints the archive's path on stdout."""
    args = _backup_parser("upgrade-backup", "--dry-run").parse_args(argv)
    settings = Settings(args.root)
    try:
        project, facts, containers = _stack(args, settings)
        if not any(c.state == "running" for c in containers):
            fail(
                "upgrade: the stack is not running, so there is nothing to back up and nothing"
                " to move: ./start-monitoring.sh start starts it at this checkout's pins"
            )
            return 1
        kept = state.read(args.root, state.PROJECT_FILE)
        chosen = upgrade.plan(facts.pins, Project.from_json(kept) if kept else None, containers)
        for line in upgrade.describe(chosen):
            info(f"upgrade: {line}")
        if args.dry_run:
            info("DRY_RUN=1: nothing backed up")
            return 0
        before = pins.ComposeFacts(pins=chosen.before, volumes=facts.volumes)
        version = f"{pins.stack_version(args.root, chosen.before)} (before an upgrade)"
        path, _ = _archive(args, settings, project, containers, before, version)
    except _OPERATION_ERRORS as err:
        fail(f"upgrade: the backup failed, nothing was changed: {err}")
        return 1
    print(path)
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
    parser = step_parser("restore", "--json", "--yes")
    parser.add_argument("archive", type=Path)
    parser.add_argument("--only", type=_stores, default=(), help="stores, comma-separated")
    parser.add_argument("--decrypt-key", type=Path, help="the key the secrets were encrypted with")
    parser.add_argument("--timeout", type=float, required=True, help="seconds to wait for health")
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        facts = pins.read(args.root, settings)
        # The archive first: a damaged one is refused even where no engine answers.
        manifest = archive.verify(args.archive, facts.pins)
        count = sum(len(s.get("files", [])) for s in manifest["stores"].values())
        info(f"{args.archive}: verified: manifest, pins, {count} files and their checksums")
        states = _states(args.root, settings)
        chosen = restore.choose(
            args.archive, manifest, project, states, args.only, args.decrypt_key
        )
        if not args.yes and not _confirmed(chosen):
            return 2
        compose_engine = engine.ComposeEngine(args.root, settings, project)

        def failed_to_heal(services: list[str]) -> dict[str, str]:
            part = {name: project.services[name] for name in services}
            sub = Project(project.name, project.profiles, part)
            return wait_healthy(args.root, settings, sub, args.timeout).failed

        checks = restore.run(chosen, project, compose_engine, failed_to_heal, info)
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
