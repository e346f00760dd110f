"""The `backup` and `restore` steps start-monitoring.sh calls (docs/operations.md): arguments,
the project and its pins read once, the engine, and the report."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from finance_stack import (
    archive,
    backup,
    captures,
    engine,
    pins,
    restore,
    secrets_archive,
    workers,
)
from finance_stack.commands import fail, info, project_for, step_parser, wait_healthy
from finance_stack.compose import ComposeError, Project, ps
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


def cmd_backup(argv: list[str]) -> int:
    """Archive every store of the running stack (docs/operations.md)."""
    parser = step_parser("backup", "--json", "--gzip", "--include-secrets")
    parser.add_argument("--to", type=Path, help="the archive's folder (default: ROOT/backups)")
    parser.add_argument("--encrypt-key", type=Path, help="include the secrets, encrypted")
    parser.add_argument("--only", type=_stores, default=(), help="stores, comma-separated")
    args = parser.parse_args(argv)
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        facts = pins.read(args.root, settings)
        containers = ps(args.root, settings.environ)
        drifted = pins.drift(facts.pins, [c for c in containers if c.state == "running"])
        if drifted:
            fail(f"backup refused, no archive written: {pins.drift_message(drifted)}")
            return 1
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
            {c.service: c.state for c in containers},
            engine.ComposeEngine(args.root, settings, project),
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
