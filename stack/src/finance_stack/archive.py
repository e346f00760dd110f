"""The backup archive: one tar (optionally gzipped), manifest.json first, then one folder per
store; and its verification, which `restore` runs before it touches anything.

verify() is a pure function of the archive file and the current image pins: it reads the whole
archive once and refuses it, with one exact sentence, when the manifest is missing or not
first, its format version is unknown, the pins differ from this checkout's, or any member is
extra, missing, of the wrong size or content, of another type, or named to escape its folder,
or the archive ends early.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from finance_stack.tarstream import CHUNK_BYTES, StreamError, safe_name

FORMAT = "ai-finance-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# What reading a damaged or cut archive raises, whatever its compression.
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, OSError)


class ArchiveError(ValueError):
    """The archive may not be restored: the message says why, exactly."""


def file_entries(prefix: str, files: list[Any], dirs: list[tuple[str, int]]) -> dict[str, Any]:
    """A store's `files` and `dirs` for the manifest, named inside the archive (`prefix`/...)."""
    return {
        "dirs": [{"path": f"{prefix}/{path}", "mode": mode} for path, mode in sorted(dirs)],
        "files": [
            {"path": f"{prefix}/{e.path}", "size": e.size, "sha256": e.sha256, "mode": e.mode}
            for e in sorted(files, key=lambda e: e.path)
        ],
    }


def _expected(manifest: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    files: dict[str, dict[str, Any]] = {}
    dirs: dict[str, int] = {}
    for name, store in manifest.get("stores", {}).items():
        if store.get("status") != "backed-up":
            continue
        dirs[name] = 0o755
        dirs.update({d["path"]: int(d["mode"]) for d in store.get("dirs", [])})
        files.update({f["path"]: f for f in store.get("files", [])})
    return files, dirs


def write(staging: Path, manifest: Mapping[str, Any], target: Path, gzip: bool) -> None:
    """Write the archive from the staged stores: manifest.json first, then each backed-up
    store's folder, its directories and its files as the manifest lists them."""
    files, dirs = _expected(manifest)
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    mtime = int(Path(staging).stat().st_mtime)
    with tarfile.open(target, mode="w:gz" if gzip else "w:", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(text), 0o600, mtime
        tar.addfile(info, io.BytesIO(text))
        for store in manifest["stores"]:
            if manifest["stores"][store].get("status") != "backed-up":
                continue
            for path, mode in sorted(dirs.items()):
                if path == store or path.startswith(f"{store}/"):
                    info = tarfile.TarInfo(path)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
                    tar.addfile(info)
            for path, entry in files.items():
                if path.startswith(f"{store}/"):
                    source = staging / path
                    info = tarfile.TarInfo(path)
                    info.size, info.mode = entry["size"], entry["mode"]
                    info.mtime = int(source.stat().st_mtime)
                    with source.open("rb") as handle:
                        tar.addfile(info, handle)


def pin_differences(archived: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Each service whose image differs between the archive and this checkout, sorted."""
    found = []
    for service in sorted(set(archived) | set(current)):
        before, now = archived.get(service), current.get(service)
        if before != now:
            found.append(f"{service}: {before or 'absent'} in the archive, {now or 'absent'} here")
    return found


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None:
        raise ArchiveError(f"empty archive: no {MANIFEST}")
    if first.name != MANIFEST or not first.isfile():
        raise ArchiveError(f"the first member is {first.name!r}, not {MANIFEST}: not a backup")
    handle = tar.extractfile(first)
    try:
        manifest = json.loads(handle.read() if handle is not None else b"")
    except ValueError as err:
        raise ArchiveError(f"{MANIFEST} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{MANIFEST} is not an {FORMAT} manifest")
    return manifest


def _check_version(manifest: Mapping[str, Any], pins: Mapping[str, str]) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArchiveError(
            f"unknown format version {version!r}: this checkout reads version {FORMAT_VERSION};"
            " restore with the checkout that wrote the archive"
        )
    differences = pin_differences(manifest.get("pins", {}), pins)
    if differences:
        raise ArchiveError(
            f"archive from another version: {'; '.join(differences)}; restore with the"
            " matching checkout or upgrade after restoring"
        )


def _digest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = tar.extractfile(member)
    digest = hashlib.sha256()
    read = 0
    while handle is not None and (chunk := handle.read(CHUNK_BYTES)):
        digest.update(chunk)
        read += len(chunk)
    if read != member.size:
        raise EOFError(f"read {read} of {member.size} bytes")
    return digest.hexdigest()


def _check_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    files: Mapping[str, Mapping[str, Any]],
    dirs: Mapping[str, int],
    seen: set[str],
) -> None:
    try:
        name = safe_name(member.name)
    except StreamError:
        raise ArchiveError(
            f"member {member.name!r} escapes the archive (absolute or '..')"
        ) from None
    if name in seen or name == MANIFEST:
        raise ArchiveError(f"member {name} appears twice")
    seen.add(name)
    if member.isdir():
        if name not in dirs:
            raise ArchiveError(f"extra member {name}/: not in {MANIFEST}")
        return
    if not member.isfile():
        raise ArchiveError(f"member {name} is not a regular file or directory")
    entry = files.get(name)
    if entry is None:
        raise ArchiveError(f"extra member {name}: not in {MANIFEST}")
    if member.size != entry["size"]:
        raise ArchiveError(f"{name}: {member.size} bytes, {MANIFEST} says {entry['size']}")
    try:
        digest = _digest(tar, member)
    except _DAMAGED as err:
        raise ArchiveError(f"truncated or damaged archive: it ends inside {name} ({err})") from None
    if digest != entry["sha256"]:
        raise ArchiveError(
            f"{name}: its SHA-256 is not the one in {MANIFEST}: the file was altered"
        )


def verify(path: Path, pins: Mapping[str, str]) -> dict[str, Any]:
    """The manifest of a whole, unaltered archive written with these pins; ArchiveError else."""
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r|*") as tar:
            manifest = _read_manifest(tar)
            _check_version(manifest, pins)
            files, dirs = _expected(manifest)
            while True:
                try:
                    member = tar.next()
                except _DAMAGED as err:
                    raise ArchiveError(f"truncated or damaged archive: {err}") from None
                if member is None:
                    break
                _check_member(tar, member, files, dirs, seen)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    except _DAMAGED as err:
        raise ArchiveError(f"{path}: not a readable tar archive ({err})") from None
    missing = sorted(set(files) - seen)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ArchiveError(
            f"missing member(s): {shown} (the archive ends early, or they were removed)"
        )
    return manifest


class _Hashing(io.RawIOBase):
    """A reader that hashes what it passes on."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.digest = source, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        return chunk


def write_store(path: Path, manifest: Mapping[str, Any], store: str, out: IO[bytes]) -> int:
    """One store's members as a tar stream on `out` (names inside the store's folder); its
    number of files. Each file is hashed again as it is sent, so an archive changed since
    verify() stops the stream with ArchiveError."""
    files, _ = _expected(manifest)
    prefix, sent, inside = f"{store}/", 0, False
    with (
        tarfile.open(path, mode="r|*") as tar,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as stream,
    ):
        for member in tar:
            if not member.name.startswith(prefix):
                if inside:
                    break  # a store's members are contiguous: the rest is other stores'
                continue
            inside = True
            info = tarfile.TarInfo(member.name[len(prefix) :])
            info.type, info.mode, info.mtime = member.type, member.mode, member.mtime
            info.size = member.size
            source = tar.extractfile(member) if member.isfile() else None
            hashing = _Hashing(source) if source is not None else None
            stream.addfile(info, hashing)
            if hashing is not None:
                if hashing.digest.hexdigest() != files[member.name]["sha256"]:
                    raise ArchiveError(f"{member.name} changed since the archive was verified")
                sent += 1
    return sent


def member_bytes(path: Path, entry: Mapping[str, Any], limit: int) -> bytes:
    """One small member's content (the secrets' inner tar), checked against its manifest
    entry."""
    name = entry["path"]
    with tarfile.open(path, mode="r|*") as tar:
        for member in tar:
            if member.name == name and member.isfile():
                if member.size > limit:
                    raise ArchiveError(f"{name}: {member.size} bytes, over {limit}")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise ArchiveError(f"{name} changed since the archive was verified")
                return data
    raise ArchiveError(f"{name}: not in the archive")
