"""The secrets in a backup: one inner tar with owners, modes and SHA256SUMS; encrypted with
the real openssl and back; a wrong key and an altered file refused."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from finance_stack import secrets_archive
from finance_stack.tarstream import write_tree

SECRETS = {"grafana_admin_password": b"s3cr3t-grafana\n", "alerting/slack_sre_url": b"http://x\n"}


@pytest.fixture
def exported(tmp_path: Path) -> bytes:
    """What the secrets worker streams: the folder as a tar, owners and modes kept."""
    folder = tmp_path / "secrets"
    for name, data in SECRETS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    if os.geteuid() == 0:
        os.chown(folder / "grafana_admin_password", 472, 472)  # Grafana's uid, as start does
    out = io.BytesIO()
    write_tree(out, folder)
    return out.getvalue()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    path.write_text("correct horse battery staple\n")
    path.chmod(0o600)
    return path


def test_openssl_is_installed() -> None:
    assert shutil.which("openssl"), "openssl not found: apt-get install openssl"


def test_the_inner_tar_starts_with_the_sums_and_keeps_owners_and_modes(exported: bytes) -> None:
    inner, names = secrets_archive.inner_tar(exported)
    assert names == ["alerting/slack_sre_url", "grafana_admin_password"]
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.getnames()[0] == secrets_archive.SUMS
        assert members["grafana_admin_password"].mode == 0o600
        if os.geteuid() == 0:
            assert members["grafana_admin_password"].uid == 472
    stream, files = secrets_archive.checked(inner)
    assert set(files) == set(names)
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        assert secrets_archive.SUMS not in tar.getnames()
        assert tar.extractfile("grafana_admin_password").read() == SECRETS["grafana_admin_password"]  # type: ignore[union-attr]


def test_encrypted_and_decrypted_with_openssl_the_secrets_come_back_whole(
    exported: bytes, key: Path
) -> None:
    inner, _ = secrets_archive.inner_tar(exported)
    sealed = secrets_archive.encrypt(inner, key)
    assert sealed.startswith(b"Salted__") and b"s3cr3t-grafana" not in sealed
    assert secrets_archive.decrypt(sealed, key) == inner


def test_a_wrong_key_is_refused(exported: bytes, key: Path, tmp_path: Path) -> None:
    sealed = secrets_archive.encrypt(secrets_archive.inner_tar(exported)[0], key)
    wrong = tmp_path / "wrong.key"
    wrong.write_text("another passphrase\n")
    with pytest.raises(secrets_archive.SecretsArchiveError) as raised:
        decrypted = secrets_archive.decrypt(sealed, wrong)
        # A wrong key that happens to unpad (about 1 in 256) is caught by SHA256SUMS instead.
        secrets_archive.checked(decrypted)
    assert "a wrong key, or a damaged archive" in str(raised.value) or "inner tar" in str(
        raised.value
    )


def test_an_altered_secret_is_refused_by_its_sum(exported: bytes) -> None:
    inner, _ = secrets_archive.inner_tar(exported)
    altered = inner.replace(b"s3cr3t-grafana", b"s3cr3t-GRAFANA")
    with pytest.raises(secrets_archive.SecretsArchiveError) as raised:
        secrets_archive.checked(altered)
    assert str(raised.value) == "secrets differ from their SHA256SUMS: grafana_admin_password"


def test_a_missing_key_file_is_named(exported: bytes, tmp_path: Path) -> None:
    with pytest.raises(secrets_archive.SecretsArchiveError) as raised:
        secrets_archive.encrypt(b"x", tmp_path / "nokey")
    assert str(raised.value) == f"key file {tmp_path / 'nokey'}: not found"
