"""The stack's secrets: generated once and kept, derived ones rewritten, all 0600 in 0700 folders,
each owned by its reader; the Redis ACL file checked on a real Redis; the command's output."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from finance_stack.access import REDIS_EXPORTER_USER, REDIS_PLATFORM_USER
from finance_stack.secrets import (
    ALERTING,
    ALERTING_FOLDER,
    ALERTMANAGER_UID,
    APP_EXPORTERS,
    DERIVED,
    GENERATED,
    alerting_defaults,
    derive,
    main,
    write_alerting_secrets,
    write_secrets,
)
from support.datastores import RedisDb, create_redis_platform_user
from support.repo import ROOT
from support.stack import ALERT_SINK_URL, ENDPOINTS

FLAGS = (
    f"--demo-postgres={ENDPOINTS.demo_postgres}",
    f"--demo-redis={ENDPOINTS.demo_redis}",
    f"--alert-sink={ENDPOINTS.alert_sink}",
)


def test_generated_secrets_are_0600_in_a_0700_folder_and_kept_across_runs(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = write_secrets(folder, {}, chown=False, endpoints=ENDPOINTS)
    assert sorted(first.created) == sorted(GENERATED) and first.kept == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted({*GENERATED, *DERIVED, *APP_EXPORTERS})
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    before = {p.name: p.read_text() for p in folder.iterdir()}
    second = write_secrets(folder, {}, chown=False, endpoints=ENDPOINTS)
    assert second.created == [] and sorted(second.kept) == sorted(GENERATED)
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert len({before[name] for name in GENERATED}) == len(GENERATED)  # all distinct


def test_redis_acl_holds_only_password_hashes() -> None:
    values = {name: f"pw-{name}" for name in GENERATED}
    acl = derive(values, {}, ENDPOINTS)["redis_acl"]
    for value in values.values():
        assert value not in acl
    assert "user default on nopass resetchannels -@all +ping +auth +hello" in acl


def test_redis_exporter_finds_its_password_and_may_run_what_it_calls() -> None:
    """redis_exporter 1.70+ looks its password up under REDIS_ADDR with REDIS_USER put in
    (exporter/redis.go, lookupPasswordInPasswordMap); older versions under the bare address.
    Its ACL user allows the commands 1.74 runs on every scrape (SLOWLOG LEN, LATENCY HISTOGRAM
    among them: a denied one is a NOPERM error in its log)."""
    values = {name: f"pw-{name}" for name in GENERATED}
    derived = derive(values, {}, ENDPOINTS)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["redis-exporter"]["environment"]
    address = urlsplit(environment["REDIS_ADDR"])
    user = environment["REDIS_USER"]
    passwords = json.loads(derived["redis_exporter_passwords"])
    assert passwords == {
        f"{address.scheme}://{user}@{address.netloc}": values["redis_exporter_password"],
        f"{address.scheme}://{address.netloc}": values["redis_exporter_password"],
    }
    (rules,) = [line for line in derived["redis_acl"].splitlines() if f"user {user} " in line]
    for command in ("+slowlog|get", "+slowlog|len", "+latency|latest", "+latency|histogram"):
        assert command in rules.split(), rules


@pytest.mark.parametrize(
    ("variable", "secret"),
    [("DATABASE_URL", "exporter_database_url"), ("REDIS_URL", "exporter_redis_url")],
)
def test_external_data_source_replaces_the_demo_url(variable: str, secret: str) -> None:
    values = {name: "x" for name in GENERATED}
    assert derive(values, {variable: "scheme://u:p@h/db"}, ENDPOINTS)[secret] == "scheme://u:p@h/db"
    assert "demo-" in derive(values, {}, ENDPOINTS)[secret]


def test_alerting_secrets_are_0600_defaults_and_a_configured_one_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "alerting"
    first = write_alerting_secrets(folder, chown=False, alert_sink=ALERT_SINK_URL)
    assert sorted(first.created) == sorted(ALERTING) and first.kept == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name, default in alerting_defaults(ALERT_SINK_URL).items():
        path = folder / name
        assert path.read_text() == default + "\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    configured = folder / "slack_sre_url"
    configured.write_text("https://chat.example.invalid/hook/sre\n")
    configured.chmod(0o644)
    second = write_alerting_secrets(folder, chown=False, alert_sink=ALERT_SINK_URL)
    assert second.kept == list(ALERTING) and second.created == []
    assert configured.read_text() == "https://chat.example.invalid/hook/sre\n"
    assert stat.S_IMODE(configured.stat().st_mode) == 0o600


def test_chown_gives_each_file_to_the_uid_that_reads_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to other uids needs root (the secrets-init job runs as root)")
    folder = tmp_path / "secrets"
    write_secrets(folder, {}, chown=True, endpoints=ENDPOINTS)
    write_alerting_secrets(folder / ALERTING_FOLDER, chown=True, alert_sink=ALERT_SINK_URL)
    owners = {p.name: p.stat().st_uid for p in folder.iterdir() if p.is_file()}
    assert owners == {**GENERATED, **DERIVED, **APP_EXPORTERS}
    alerting = folder / ALERTING_FOLDER
    assert {p.stat().st_uid for p in [alerting, *alerting.iterdir()]} == {ALERTMANAGER_UID}


# ---- the Redis ACL file on a real Redis ---------------------------------------------------

VALUES = {name: f"pw-{name}" for name in GENERATED}
PASSWORDS = {
    REDIS_EXPORTER_USER: VALUES["exporter_redis_password"],
    "redis_exporter": VALUES["redis_exporter_password"],
    REDIS_PLATFORM_USER: VALUES["platform_redis_password"],
}


def _load_acl_user(admin: redis.Redis, name: str) -> str:
    """Create the ACL file's user `name` under a name of its own; return that name."""
    (line,) = [
        line
        for line in derive(VALUES, {}, ENDPOINTS)["redis_acl"].splitlines()
        if f"user {name} " in line
    ]
    _, _, *rules = line.split()
    loaded = f"aclfile_{name}"
    admin.execute_command("ACL", "SETUSER", loaded, "reset", *rules)
    return loaded


def _client(redis_db: RedisDb, user: str, password: str) -> redis.Redis:
    address = urlsplit(redis_db.admin_url)
    return redis.Redis(host=address.hostname, port=address.port, username=user, password=password)


def _allowed(client: redis.Redis, *command: str) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return False
    return True


def test_each_redis_user_of_the_acl_file_may_run_its_commands_and_nothing_else(
    redis_db: RedisDb,
) -> None:
    admin = redis.Redis.from_url(redis_db.admin_url)
    clients = {
        name: _client(redis_db, _load_acl_user(admin, name), password)
        for name, password in PASSWORDS.items()
    }
    exporter, service, platform = clients.values()
    checks = {
        (REDIS_EXPORTER_USER, "MGET md:last_tick:x"): _allowed(exporter, "MGET", "md:last_tick:x"),
        (REDIS_EXPORTER_USER, "LLEN orders:queue:x"): _allowed(exporter, "LLEN", "orders:queue:x"),
        (REDIS_EXPORTER_USER, "SET md:last_tick:x"): _allowed(exporter, "SET", "md:last_tick:x", 1),
        (REDIS_EXPORTER_USER, "MGET other"): _allowed(exporter, "MGET", "other"),
        ("redis_exporter", "INFO"): _allowed(service, "INFO"),
        ("redis_exporter", "SLOWLOG LEN"): _allowed(service, "SLOWLOG", "LEN"),
        ("redis_exporter", "LATENCY HISTOGRAM"): _allowed(service, "LATENCY", "HISTOGRAM"),
        ("redis_exporter", "SET any"): _allowed(service, "SET", "any", 1),
        (REDIS_PLATFORM_USER, "SET md:last_tick:x"): _allowed(platform, "SET", "md:last_tick:x", 1),
        (REDIS_PLATFORM_USER, "RPUSH orders:queue:x"): _allowed(
            platform, "RPUSH", "orders:queue:x", 1
        ),
        (REDIS_PLATFORM_USER, "DEL md:last_tick:x"): _allowed(platform, "DEL", "md:last_tick:x"),
        (REDIS_PLATFORM_USER, "SET other"): _allowed(platform, "SET", "other", 1),
    }
    for client in (admin, *clients.values()):
        client.close()
    assert checks == {
        (REDIS_EXPORTER_USER, "MGET md:last_tick:x"): True,
        (REDIS_EXPORTER_USER, "LLEN orders:queue:x"): True,
        (REDIS_EXPORTER_USER, "SET md:last_tick:x"): False,
        (REDIS_EXPORTER_USER, "MGET other"): False,
        ("redis_exporter", "INFO"): True,
        ("redis_exporter", "SLOWLOG LEN"): True,
        ("redis_exporter", "LATENCY HISTOGRAM"): True,
        ("redis_exporter", "SET any"): False,
        (REDIS_PLATFORM_USER, "SET md:last_tick:x"): True,
        (REDIS_PLATFORM_USER, "RPUSH orders:queue:x"): True,
        (REDIS_PLATFORM_USER, "DEL md:last_tick:x"): False,
        (REDIS_PLATFORM_USER, "SET other"): False,
    }


def test_the_tests_redis_users_have_the_acl_files_permissions(redis_db: RedisDb) -> None:
    """The fixtures' users (support.datastores, redis-py) and the ACL file come from one source."""
    admin = redis.Redis.from_url(redis_db.admin_url, decode_responses=True)
    create_redis_platform_user(admin, "unused")  # the exporter's user is the fixture's
    fields = ("flags", "keys", "channels", "commands")
    for name in (REDIS_EXPORTER_USER, REDIS_PLATFORM_USER):
        from_file = admin.acl_getuser(_load_acl_user(admin, name))
        from_tests = admin.acl_getuser(name)
        assert {f: from_file[f] for f in fields} == {f: from_tests[f] for f in fields}, name
    admin.close()


# ---- python3 -m finance_stack secrets ------------------------------------------------------


def test_the_command_reports_created_then_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    folder = tmp_path / "secrets"
    assert main([str(folder), *FLAGS]) == 0
    assert main([str(folder), *FLAGS]) == 0
    alerting = folder / ALERTING_FOLDER
    assert capsys.readouterr().err.splitlines() == [
        f"[+] secrets in {folder}: created {len(GENERATED)}, kept 0",
        f"[+] alerting receivers in {alerting}: 0 configured, {len(ALERTING)} new pointing at "
        "the local alert-sink",
        f"[+] secrets in {folder}: created 0, kept {len(GENERATED)}",
        f"[+] alerting receivers in {alerting}: {len(ALERTING)} configured, 0 new pointing at "
        "the local alert-sink",
    ]


def test_the_command_fails_with_status_1_where_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(blocker / "secrets"), *FLAGS]) == 1
    assert capsys.readouterr().err.startswith("finance_stack secrets: error: ")


def test_the_command_without_a_folder_is_a_usage_error() -> None:
    assert main([]) == 2
