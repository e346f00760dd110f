"""Folders as tar streams and back, for the backup's workers and the host that talks to them.

Only directories and regular files travel (a symlink or device in a volume is left out and
counted). Every name is checked before it is used: relative, no `..`, no empty part, so a
stream can never write outside the folder it is received into. Files are hashed (SHA-256) as
they are read or written, never read twice.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

CHUNK_BYTES = 1 << 20


class StreamError(ValueError):
    """A stream member that may not be written: an unsafe name or an unexpected type."""


@dataclass(frozen=True)
class Entry:
    """A file received or listed: its path (relative, POSIX), size, SHA-256 and mode."""

    path: str
    size: int
    sha256: str
    mode: int


def safe_name(name: str) -> str:
    """`name` as a relative POSIX path inside its folder; StreamError if it could escape."""
    stripped = name.removeprefix("./").rstrip("/")
    path = PurePosixPath(stripped)
    if (
        not stripped
        or "\\" in name
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in stripped.split("/"))
    ):
        raise StreamError(f"unsafe path {name!r}: absolute, empty or with '..'")
    return str(path)


def walk(root: Path, only: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> Iterator[Path]:
    """Directories and regular files under `root` (or only the top-level names `only`), in a
    stable order, parents first; `exclude` top-level names are left out."""
    for entry in sorted(root.iterdir()):
        if (only and entry.name not in only) or entry.name in exclude:
            continue
        if entry.is_symlink():
            continue
        yield entry
        if entry.is_dir():
            for folder, dirs, files in os.walk(entry):
                dirs.sort()
                for name in [*sorted(dirs), *sorted(files)]:
                    path = Path(folder) / name
                    if not path.is_symlink() and (path.is_dir() or path.is_file()):
                        yield path


def write_tree(
    out: IO[bytes], root: Path, only: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> tuple[int, int]:
    """A tar stream of `root`'s content (names relative to it) on `out`: (files, bytes)."""
    files = size = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in walk(root, only, exclude):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                files, size = files + 1, size + info.size
            elif info.isdir():
                tar.addfile(info)
    return files, size


def copy_hashed(source: IO[bytes], target: IO[bytes], size: int) -> str:
    """Copy exactly `size` bytes; their SHA-256. A short source raises EOFError."""
    digest = hashlib.sha256()
    left = size
    while left:
        chunk = source.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise EOFError(f"ends {left} bytes early")
        digest.update(chunk)
        target.write(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def receive(
    stream: IO[bytes], dest: Path, owners: bool = False, modes: bool = True
) -> tuple[list[Entry], list[tuple[str, int]]]:
    """Write a tar stream's directories and files under `dest`: the files, and the directories
    with their modes. `owners` gives each its owner from the stream (root only); `modes`
    applies the stream's modes (the host's staging keeps them in the manifest instead, so that
    it can always delete its staging folder)."""
    files: list[Entry] = []
    dirs: list[tarfile.TarInfo] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = safe_name(member.name)
            path = dest / name
            if member.isdir():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                dirs.append(member)
                continue
            if not member.isfile():
                raise StreamError(f"{member.name}: not a file or directory")
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has content
            with path.open("wb") as target:
                digest = copy_hashed(source, target, member.size)
            files.append(Entry(name, member.size, digest, member.mode & 0o777))
            _own(path, member, owners, modes)
    # Directories last, deepest first: a read-only one must not stop what goes inside it.
    for member in sorted(dirs, key=lambda m: m.name.count("/"), reverse=True):
        _own(dest / safe_name(member.name), member, owners, modes)
    return files, [(safe_name(member.name), member.mode & 0o777) for member in dirs]


def _own(path: Path, member: tarfile.TarInfo, owners: bool, modes: bool) -> None:
    if owners:
        os.chown(path, member.uid, member.gid)
    if modes:
        os.chmod(path, member.mode & 0o777)
    os.utime(path, (member.mtime, member.mtime))


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read once."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def listing(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Every regular file under `root`: relative path -> (size, SHA-256)."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, sha256_of(path))
        for path in walk(root, exclude=exclude)
        if path.is_file()
    }
