"""The secrets in a backup: ./secrets as one inner tar, encrypted when a key is given.

The inner tar keeps each file's owner and mode (every secret belongs to the uid that reads it)
and starts with SHA256SUMS of the files, so a wrong key or a damaged archive is caught after
decryption, not by a service that cannot log in. The manifest lists the names only: a digest
of a short secret (a webhook URL, a password someone typed) would let it be guessed offline.

Encryption is OpenSSL's `enc` (the Python standard library has no cipher), AES-256-CBC with a
key from PBKDF2 (600 000 iterations, a random salt), the passphrase the first line of the key
file: `openssl enc -d -aes-256-cbc -pbkdf2 -iter 600000 -pass file:KEY` reads it back by hand.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from finance_stack.tarstream import safe_name

SUMS = "SHA256SUMS"
INNER = "secrets.tar"
ENCRYPTED = "secrets.tar.enc"
CIPHER = ("enc", "-aes-256-cbc", "-pbkdf2", "-iter", "600000")
TIMEOUT_SECONDS = 120
MAX_BYTES = 64 << 20


class SecretsArchiveError(RuntimeError):
    """openssl is missing or failed, or the inner tar is not what its SHA256SUMS says."""


def inner_tar(stream: bytes) -> tuple[bytes, list[str]]:
    """The worker's tar of ./secrets as the inner tar: SHA256SUMS first, then the same members
    (owners and modes kept); and the files' names."""
    sums: list[str] = []
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        for member in tar:
            safe_name(member.name)
            data = None
            if member.isfile():
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                sums.append(f"{hashlib.sha256(data).hexdigest()}  {member.name}")
            elif not member.isdir():
                continue
            members.append((member, data))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        text = ("\n".join(sums) + "\n").encode()
        info = tarfile.TarInfo(SUMS)
        info.size, info.mode = len(text), 0o600
        tar.addfile(info, io.BytesIO(text))
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue(), sorted(line.split("  ", 1)[1] for line in sums)


def checked(inner: bytes) -> tuple[bytes, dict[str, tuple[int, str]]]:
    """The inner tar without SHA256SUMS, once every file matches it; and each file's size and
    SHA-256."""
    try:
        with tarfile.open(fileobj=io.BytesIO(inner), mode="r:") as tar:
            members = tar.getmembers()
            if not members or members[0].name != SUMS:
                raise SecretsArchiveError(f"the secrets' inner tar does not start with {SUMS}")
            sums_file = tar.extractfile(members[0])
            expected: dict[str, str] = {}
            for line in (sums_file.read().decode() if sums_file else "").splitlines():
                digest, _, name = line.partition("  ")
                expected[name] = digest
            out = io.BytesIO()
            found: dict[str, str] = {}
            sizes: dict[str, int] = {}
            with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as kept:
                for member in members[1:]:
                    safe_name(member.name)
                    handle = tar.extractfile(member) if member.isfile() else None
                    data = handle.read() if handle is not None else None
                    if data is not None:
                        found[member.name] = hashlib.sha256(data).hexdigest()
                        sizes[member.name] = len(data)
                    kept.addfile(member, io.BytesIO(data) if data is not None else None)
    except tarfile.TarError as err:
        raise SecretsArchiveError(f"the secrets' inner tar is damaged: {err}") from None
    if found != expected:
        bad = sorted(set(found) ^ set(expected) | {n for n in found if found[n] != expected.get(n)})
        raise SecretsArchiveError(f"secrets differ from their {SUMS}: {', '.join(bad)}")
    return out.getvalue(), {name: (sizes[name], found[name]) for name in sorted(found)}


def require(key: Path) -> str:
    """openssl's path, once it and the key file are there; SecretsArchiveError else (checked
    before a backup pauses anything)."""
    binary = shutil.which("openssl")
    if binary is None:
        raise SecretsArchiveError(
            "openssl not found: install it (Debian/Ubuntu: apt-get install openssl) to encrypt"
            " or decrypt the secrets"
        )
    if not key.is_file():
        raise SecretsArchiveError(f"key file {key}: not found")
    if not key.read_text(encoding="utf-8", errors="replace").strip():
        raise SecretsArchiveError(f"key file {key}: empty (its first line is the passphrase)")
    return binary


def _openssl(args: list[str], data: bytes, key: Path) -> bytes:
    binary = require(key)
    result = subprocess.run(
        [binary, *CIPHER, *args, "-pass", f"file:{key}"],
        input=data,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise SecretsArchiveError(f"openssl: {reason[0] if reason else 'failed'}")
    return result.stdout


def encrypt(inner: bytes, key: Path) -> bytes:
    """The inner tar encrypted with the passphrase in `key`."""
    return _openssl(["-salt"], inner, key)


def decrypt(data: bytes, key: Path) -> bytes:
    """The inner tar back; SecretsArchiveError for a wrong key (most often "bad decrypt"; the
    rest is caught by SHA256SUMS)."""
    try:
        return _openssl(["-d"], data, key)
    except SecretsArchiveError as err:
        raise SecretsArchiveError(f"{err}: a wrong key, or a damaged archive") from None
