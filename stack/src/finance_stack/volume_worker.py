"""`volume-worker`: the part of backup and restore that runs next to a store's files.

`backup` and `restore` run it in a one-off container of the stack's image (compose services
volume-worker and elastic-worker, profile ops), as the uid that owns the store's volume, which
is mounted at /volume. Files travel as a tar stream: on stdout from `export`, on stdin into
`stage`. The host reads the worker's protocol lines on stderr:

  @@ready          (with --handshake) waiting for one line on stdin: GO, or anything else to
                   stop without touching anything (the host could not pause the service)
  @@done JSON      finished; what it did
  @@error TEXT     failed; TEXT says why (exit status 1)

A restore first `stage`s the archive's files into /volume/.ai-finance-restore (the service may
still run: it ignores the folder), and only once the host has compared them with the manifest
does `commit` replace the volume's content with them, the service stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from pathlib import Path

from finance_stack import elastic_snapshot, tarstream, tsdb

READY, DONE, ERROR = "@@ready", "@@done", "@@error"
ABORTED = 3


class Aborted(Exception):
    """The host said not to go on."""


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _handshake(enabled: bool) -> None:
    if not enabled:
        return
    _say(READY)
    if sys.stdin.buffer.readline().strip() != b"GO":
        raise Aborted


def _snapshot_prometheus(args: argparse.Namespace) -> dict[str, object]:
    root = Path(args.root)
    _handshake(args.handshake)
    # Only after GO, so that a refused pause changes nothing; there is rarely any.
    stale = tsdb.remove_stale(root)
    report = tsdb.snapshot(root, args.name)
    return {**report.__dict__, "removed_stale": stale}


def _export(args: argparse.Namespace) -> dict[str, object]:
    path = Path(args.path)
    _handshake(args.handshake)
    missing = sorted(set(args.only) - {entry.name for entry in path.iterdir()})
    files, size = tarstream.write_tree(
        sys.stdout.buffer, path, tuple(args.only), (tsdb.STAGING, *args.exclude)
    )
    sys.stdout.buffer.flush()
    if args.remove_after:
        shutil.rmtree(path)
        if path.parent.name == tsdb.SNAPSHOTS and not any(path.parent.iterdir()):
            path.parent.rmdir()
    return {"files": files, "bytes": size, "missing": missing}


def _stage(args: argparse.Namespace) -> dict[str, object]:
    staging = Path(args.root) / tsdb.STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    try:
        tarstream.receive(sys.stdin.buffer, staging, owners=args.chown)
        found = tarstream.listing(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"files": {path: [size, digest] for path, (size, digest) in sorted(found.items())}}


def _commit(args: argparse.Namespace) -> dict[str, object]:
    root = Path(args.root)
    staging = root / tsdb.STAGING
    if not staging.is_dir():
        raise RuntimeError(f"nothing staged in {staging}")
    for entry in sorted(root.iterdir()):
        if entry.name == tsdb.STAGING:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in sorted(staging.iterdir()):
        entry.rename(root / entry.name)
    staging.rmdir()
    found = [path.relative_to(root) for path in tarstream.walk(root) if path.is_file()]
    return {"files": sorted(str(path) for path in found)}


def _discard(args: argparse.Namespace) -> dict[str, object]:
    staging = Path(args.root) / tsdb.STAGING
    existed = staging.exists()
    shutil.rmtree(staging, ignore_errors=True)
    return {"discarded": existed}


def _elastic(args: argparse.Namespace) -> dict[str, object]:
    client = elastic_snapshot.Client(args.url, Path(args.password_file).read_text().strip())
    if args.command == "elastic-unregister":
        return elastic_snapshot.unregister(client)
    if args.command == "elastic-restore":
        return elastic_snapshot.restore(client, args.snapshot, _say)
    _handshake(args.handshake)
    return elastic_snapshot.snapshot(client, args.snapshot)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finance_stack volume-worker")
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser("snapshot-prometheus", help="hard-link snapshot of a TSDB")
    snap.add_argument("root")
    snap.add_argument("name")
    export = commands.add_parser("export", help="a folder as a tar stream on stdout")
    export.add_argument("path")
    export.add_argument("--only", action="append", default=[], help="only this top-level name")
    export.add_argument("--exclude", action="append", default=[], help="not this top-level name")
    export.add_argument("--remove-after", action="store_true", help="delete PATH once sent")
    for name in ("stage", "commit", "discard"):
        sub = commands.add_parser(name, help=f"{name} a restore in ROOT/{tsdb.STAGING}")
        sub.add_argument("root")
        if name == "stage":
            sub.add_argument("--chown", action="store_true", help="owners from the stream")
    for name in ("elastic-snapshot", "elastic-unregister", "elastic-restore"):
        sub = commands.add_parser(name, help=f"Elasticsearch's snapshot API: {name[8:]}")
        sub.add_argument("--url", required=True)
        sub.add_argument("--password-file", required=True)
        if name != "elastic-unregister":
            sub.add_argument("--snapshot", required=True)
    for sub in (snap, export, commands.choices["elastic-snapshot"]):
        sub.add_argument("--handshake", action="store_true", help="wait for GO on stdin")
    return parser


HANDLERS = {
    "snapshot-prometheus": _snapshot_prometheus,
    "export": _export,
    "stage": _stage,
    "commit": _commit,
    "discard": _discard,
    "elastic-snapshot": _elastic,
    "elastic-unregister": _elastic,
    "elastic-restore": _elastic,
}


def main(argv: list[str]) -> int:
    """Run one step next to a store's files; protocol lines on stderr (module docstring)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        result = HANDLERS[args.command](args)
    except Aborted:
        return ABORTED
    except (OSError, ValueError, RuntimeError, EOFError, tarfile.TarError) as err:
        _say(f"{ERROR} {args.command}: {err}")
        return 1
    _say(f"{DONE} {json.dumps(result, sort_keys=True)}")
    return 0
