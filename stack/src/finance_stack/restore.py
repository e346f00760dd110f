"""`restore ARCHIVE`: put a backup back and show it is all there (docs/operations.md, "Restore").

`plan()` decides everything before the engine is touched: the archive verified whole against
this checkout's pins (finance_stack.archive.verify), the stores to restore, each service
present and running. `run()` then stages every store's files next to its volume and compares
them with the manifest, all before stopping anything; stops the services; swaps the staged
files in; restores Elasticsearch's indices through its API; starts the services, waits for
their health, and checks what the manifest recorded is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finance_stack import archive, secrets_archive
from finance_stack.compose import Project
from finance_stack.engine import Engine
from finance_stack.restore_checks import Check, check
from finance_stack.stores import BY_NAME, STORES, Store
from finance_stack.workers import Worker

# Capabilities of the root worker that writes ./secrets back, each file to its owner.
SECRETS_WRITE_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER")


class RestoreError(RuntimeError):
    """The restore cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Plan:
    """What a restore will do: the archive, its manifest, the stores in order."""

    archive: Path
    manifest: dict[str, Any]
    stores: tuple[Store, ...]
    decrypt_key: Path | None
    # The services stopped for the restore and started after it: the stores' own, and the
    # writers of those restored through an API (Logstash for Elasticsearch) that were running.
    stopped: tuple[str, ...] = ()


def plan(
    path: Path,
    pins: dict[str, str],
    project: Project,
    states: dict[str, str],
    only: tuple[str, ...] = (),
    decrypt_key: Path | None = None,
) -> Plan:
    """Verify the archive and choose the stores; raises ArchiveError or RestoreError, and
    touches nothing."""
    return choose(path, archive.verify(path, pins), project, states, only, decrypt_key)


def choose(
    path: Path,
    manifest: dict[str, Any],
    project: Project,
    states: dict[str, str],
    only: tuple[str, ...] = (),
    decrypt_key: Path | None = None,
) -> Plan:
    """The stores of a verified archive to restore, each service present and running;
    RestoreError names what is missing."""
    stores = manifest["stores"]
    held = sorted(name for name, s in stores.items() if s["status"] == "backed-up")
    unknown = sorted(set(only) - set(BY_NAME))
    if unknown:
        raise RestoreError(
            f"--only: unknown store {', '.join(unknown)}; known: {', '.join(BY_NAME)}"
        )
    for name in only:
        if name not in held:
            why = stores.get(name, {}).get("reason", "not in the archive")
            raise RestoreError(f"{name} is not in the archive ({why})")
    # Secrets only when asked for: replacing them under running datastores breaks their logins.
    chosen = [
        s for s in STORES if s.name in held and (s.name in only if only else s.name != "secrets")
    ]
    if not chosen:
        raise RestoreError(f"nothing to restore: the archive holds {', '.join(held) or 'nothing'}")
    for store in chosen:
        if store.name == "secrets":
            if stores["secrets"].get("encrypted") and decrypt_key is None:
                raise RestoreError("the archive's secrets are encrypted: give --decrypt-key FILE")
            continue
        service = str(store.service)
        if service not in project.services:
            raise RestoreError(
                f"{store.name}: {service} is not in the profiles {project.profiles}: start the"
                " stack with a profile that runs it, then restore"
            )
        if states.get(service) != "running":
            raise RestoreError(
                f"{store.name}: {service} is not running: ./start-monitoring.sh start first"
                " (restore replaces the content of the volumes start created)"
            )
    stopped = sorted(
        {str(s.service) for s in chosen if s.stops and s.service}
        | {w for s in chosen for w in s.writers if states.get(w) == "running"}
    )
    return Plan(path, manifest, tuple(chosen), decrypt_key, tuple(stopped))


def _expected(plan: Plan, store: Store) -> dict[str, list[Any]]:
    prefix = f"{store.name}/"
    return {
        f["path"][len(prefix) :]: [f["size"], f["sha256"]]
        for f in plan.manifest["stores"][store.name]["files"]
    }


def _stage(plan: Plan, store: Store, engine: Engine) -> dict[str, list[Any]]:
    """Stream a store's files to a worker that stages them in its volume; what it wrote."""
    mount = engine.mount_path(store)
    if store.name == "secrets":
        entry = plan.manifest["stores"]["secrets"]["files"][0]
        data = archive.member_bytes(plan.archive, entry, secrets_archive.MAX_BYTES)
        if plan.manifest["stores"]["secrets"].get("encrypted"):
            assert plan.decrypt_key is not None  # plan() refuses it otherwise
            data = secrets_archive.decrypt(data, plan.decrypt_key)
        stream, expected = secrets_archive.checked(data)
        command = engine.worker(store, ["stage", mount, "--chown"], False, SECRETS_WRITE_CAPS)
        worker = Worker(command, engine.environ, "secrets: stage")
        worker.feed_stdin(lambda stdin: stdin.write(stream))
        wanted = {name: [size, digest] for name, (size, digest) in expected.items()}
    else:
        worker = Worker(
            engine.worker(store, ["stage", mount], False), engine.environ, f"{store.name}: stage"
        )
        worker.feed_stdin(
            lambda stdin: archive.write_store(plan.archive, plan.manifest, store.name, stdin)
        )
        wanted = _expected(plan, store)
    try:
        staged: dict[str, list[Any]] = worker.finish()["files"]
    except BaseException:
        worker.kill()
        raise
    if staged != wanted:
        differ = sorted(
            set(staged) ^ set(wanted) | {p for p in staged if staged[p] != wanted.get(p)}
        )
        raise RestoreError(
            f"{store.name}: staged files differ from the archive: {', '.join(differ[:5])}"
        )
    return staged


def _run_worker(engine: Engine, command: list[str], what: str) -> dict[str, Any]:
    worker = Worker(command, engine.environ, what)
    worker.read_stdout(lambda out: out.read())
    try:
        return worker.finish()
    except BaseException:
        worker.kill()
        raise


def _elastic_snapshot(plan: Plan) -> str:
    return str(plan.manifest["stores"]["elasticsearch"]["snapshot"])


def run(
    plan: Plan,
    project: Project,
    engine: Engine,
    wait_healthy: Callable[[list[str]], dict[str, str]],
    progress: Callable[[str], None],
) -> list[Check]:
    """Stage, stop, commit, start, check; the checks (a failed one fails the restore)."""
    begun = time.monotonic()

    def say(text: str) -> None:
        progress(f"{time.monotonic() - begun:6.1f}s {text}")

    staged: dict[str, list[str]] = {}
    try:
        for store in plan.stores:
            files = _stage(plan, store, engine)
            staged[store.name] = sorted(files)
            say(f"{store.name}: {len(files)} files staged, each as the archive has it")
    except BaseException:
        for store in (s for s in plan.stores if s.name in staged):
            _run_worker(
                engine,
                engine.worker(store, ["discard", engine.mount_path(store)], False),
                f"{store.name}: discard",
            )
        raise
    names = {s.name for s in plan.stores}
    if "elasticsearch" in names:
        _run_worker(engine, engine.elastic(["elastic-unregister"]), "elasticsearch: unregister")
    stopped = list(plan.stopped)
    say(f"stopping {', '.join(stopped) or 'nothing'}")
    engine.stop(stopped)
    restored: dict[str, Any] = {}
    leftovers: list[Check] = []
    try:
        for store in plan.stores:
            committed = _run_worker(
                engine,
                engine.worker(store, ["commit", engine.mount_path(store)], False),
                f"{store.name}: commit",
            )
            if committed["files"] != staged[store.name]:
                extra = sorted(set(committed["files"]) ^ set(staged[store.name]))
                leftovers.append(Check(store.name, False, f"volume differs after commit: {extra}"))
            say(f"{store.name}: restored into {store.volume or './secrets'}")
        if "elasticsearch" in names:
            snapshot = _elastic_snapshot(plan)
            report = _run_worker(
                engine,
                engine.elastic(["elastic-restore", "--snapshot", snapshot]),
                "elasticsearch: restore",
            )
            restored["elasticsearch"] = report["indices"]
            say(f"elasticsearch: snapshot {snapshot} restored")
    finally:
        say(f"starting {', '.join(stopped) or 'nothing'}")
        engine.start(stopped)
    failed = wait_healthy(stopped)
    checks = [Check(name, False, f"not healthy: {why}") for name, why in sorted(failed.items())]
    checks += leftovers
    for store in plan.stores:
        if store.name == "secrets":
            checks.append(
                Check(
                    "secrets",
                    True,
                    "restored with their owners and modes: ./start-monitoring.sh restart uses them",
                )
            )
        elif store.service not in failed:
            checks.append(check(plan.manifest["stores"][store.name], store, project, restored))
    return checks
