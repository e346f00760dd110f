"""Your own datastores' monitoring URLs → what postgres_exporter and redis_exporter connect with:
parsed once, every bad URL named with its variable and line of .env, never with its value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finance_stack import datastores
from finance_stack.datastores import (
    DatastoreURLError,
    PostgresTarget,
    RedisTarget,
    compose_exports,
    redis_password_map,
    secret_files,
    targets,
)
from finance_stack.envfile import Settings
from finance_stack.preflight import PreflightError, check_datastores
from finance_stack.secrets import main
from support.stack import ENDPOINTS

RAW = "s3cr&t/p@ss:word%"  # every character a URL gives a meaning to
ENCODED = "s3cr%26t%2Fp%40ss%3Aword%25"


def settings_with(tmp_path: Path, dotenv: str, environ: dict[str, str] | None = None) -> Settings:
    (tmp_path / ".env").write_text(dotenv)
    return Settings(tmp_path, environ=environ or {})


def test_postgres_url_splits_into_uri_user_and_password(tmp_path: Path) -> None:
    url = f"postgresql://mon%40itor:{ENCODED}@db.internal:6432/plat%20form?sslmode=verify-full"
    postgres, redis = targets(settings_with(tmp_path, f"DATABASE_URL={url}\n"))
    assert postgres == PostgresTarget(
        uri="db.internal:6432/plat%20form?sslmode=verify-full",
        user="mon@itor",
        password=RAW,
        source="DATABASE_URL (.env:1)",
    )
    assert redis is None


def test_the_monitoring_url_wins_over_the_business_one(tmp_path: Path) -> None:
    dotenv = (
        "DATABASE_URL=postgresql://finance_exporter:a@db/platform\n"
        "POSTGRES_EXPORTER_DATABASE_URL=postgresql://postgres_exporter:b@db/platform\n"
        "REDIS_URL=redis://finance_exporter:c@cache:6379/0\n"
        "REDIS_EXPORTER_URL=redis://redis_exporter:d@cache:6379/0\n"
    )
    postgres, redis = targets(settings_with(tmp_path, dotenv))
    assert postgres is not None and redis is not None
    assert (postgres.user, postgres.password, postgres.uri) == (
        "postgres_exporter",
        "b",
        "db/platform",
    )
    assert (redis.user, redis.password, redis.source) == (
        "redis_exporter",
        "d",
        "REDIS_EXPORTER_URL (.env:4)",
    )


def test_a_postgres_url_without_password_or_port_or_database(tmp_path: Path) -> None:
    postgres, _ = targets(settings_with(tmp_path, "DATABASE_URL=postgres://monitor@db\n"))
    assert postgres is not None
    assert (postgres.uri, postgres.user, postgres.password) == ("db/", "monitor", "")
    assert secret_files(postgres, None)[datastores.PG_PASSWORD_FILE] == "\n"


def test_rediss_url_keeps_tls_the_database_and_drops_redis_py_options(tmp_path: Path) -> None:
    url = f"rediss://mon:{ENCODED}@cache.internal:6380/2?ssl_cert_reqs=required"
    _, redis = targets(settings_with(tmp_path, f"REDIS_URL={url}\n"))
    assert redis == RedisTarget(
        address="rediss://cache.internal:6380/2",
        user="mon",
        password=RAW,
        source="REDIS_URL (.env:1)",
    )
    assert compose_exports(redis) == {
        "APP_REDIS_EXPORTER_ADDR": "rediss://cache.internal:6380/2",
        "APP_REDIS_EXPORTER_USER": "mon",
    }


def test_the_password_map_has_the_key_redis_exporter_looks_up() -> None:
    """v1.74 puts REDIS_USER into REDIS_ADDR with Go's url.User (escaped as userinfo) and looks
    that up; without a user, the address itself."""
    target = RedisTarget("redis://cache:6379/0", "ops team+1", "pw", "REDIS_URL (environment)")
    assert redis_password_map(target) == {
        "redis://cache:6379/0": "pw",
        "redis://ops%20team+1@cache:6379/0": "pw",
    }
    legacy = RedisTarget("redis://[::1]:6379", "", "pw", "REDIS_URL (environment)")
    assert redis_password_map(legacy) == {"redis://[::1]:6379": "pw"}
    assert redis_password_map(RedisTarget("redis://cache", "u", "", "x")) == {}


def test_secret_files_hold_no_password_outside_their_own_file(tmp_path: Path) -> None:
    dotenv = f"DATABASE_URL=postgresql://u:{ENCODED}@db/p\nREDIS_URL=redis://u:{ENCODED}@cache/0\n"
    files = secret_files(*targets(settings_with(tmp_path, dotenv)))
    assert files[datastores.PG_URI_FILE] == "db/p\n"
    assert files[datastores.PG_USER_FILE] == "u\n"
    assert files[datastores.PG_PASSWORD_FILE] == RAW + "\n"
    assert json.loads(files[datastores.REDIS_PASSWORDS_FILE]) == {
        "redis://cache/0": RAW,
        "redis://u@cache/0": RAW,
    }


def test_nothing_set_writes_empty_files_and_exports_nothing(tmp_path: Path) -> None:
    postgres, redis = targets(settings_with(tmp_path, "DATABASE_URL=\n"))
    assert (postgres, redis) == (None, None)
    assert secret_files(None, None) == {
        datastores.PG_URI_FILE: "",
        datastores.PG_USER_FILE: "",
        datastores.PG_PASSWORD_FILE: "",
        datastores.REDIS_PASSWORDS_FILE: "{}\n",
    }
    assert compose_exports(None) == {}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("DATABASE_URL=mysql://u:s3cret@db/p", "scheme 'mysql', not postgresql or postgres"),
        ("DATABASE_URL=db.internal:5432/p", "scheme 'db.internal', not postgresql or postgres"),
        ("DATABASE_URL=postgresql://u:s3cret@/p", "no host (a Unix socket is not reachable)"),
        ("DATABASE_URL=postgresql://u:s3cret@db:54x2/p", "the host or port cannot be read"),
        ("DATABASE_URL=postgresql://:s3cret@db/p", "no user name"),
        ("DATABASE_URL=postgresql://u@db/p?password=s3cret", "password in the query string"),
        ("DATABASE_URL=postgresql://u:s3cret@db/p?sslmode=prefer", "sslmode=prefer is not one"),
        ("REDIS_URL=unix://:s3cret@/run/redis.sock", "scheme 'unix', not redis or rediss"),
        ("REDIS_URL=redis://u:s3cret@[::1/0", "the host or port cannot be read"),
        ("REDIS_URL=redis://u:s3cret@cache/zero", "the database is not a number"),
        ("REDIS_EXPORTER_URL=http://u:s3cret@cache", "scheme 'http', not redis or rediss"),
    ],
)
def test_a_bad_url_is_named_with_its_line_and_never_shown(
    tmp_path: Path, line: str, reason: str
) -> None:
    with pytest.raises(DatastoreURLError) as caught:
        targets(settings_with(tmp_path, f"# a comment\n{line}\n"))
    message = str(caught.value)
    assert message.startswith(f".env:2: {line.split('=')[0]} is not a usable ")
    assert reason in message
    assert "s3cret" not in message


def test_every_bad_url_is_reported_together_and_from_the_environment_too(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, "REDIS_URL=redis://u:s3cret@cache/x\n", {"DATABASE_URL": "pg://u:s3cret@db"}
    )
    with pytest.raises(DatastoreURLError) as caught:
        targets(settings)
    lines = str(caught.value).splitlines()
    assert [line.split(" is not")[0] for line in lines] == [
        "environment: DATABASE_URL",
        ".env:1: REDIS_URL",
    ]
    assert "s3cret" not in str(caught.value)


def test_preflight_stops_on_a_bad_url_and_exports_the_redis_address(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match=r"^\.env:1: REDIS_URL"):
        check_datastores(settings_with(tmp_path, "REDIS_URL=redis://u:s3cret@cache:x/0\n"))
    good = settings_with(tmp_path, "REDIS_URL=redis://u:s3cret@cache:6379/0\n")
    exports = check_datastores(good)
    assert exports == {
        "APP_REDIS_EXPORTER_ADDR": "redis://cache:6379/0",
        "APP_REDIS_EXPORTER_USER": "u",
    }
    assert "s3cret" not in json.dumps(exports)


# ---- the secrets job: reads .env from the mounted project folder -------------------------


def _flags(folder: Path, project: Path) -> list[str]:
    return [
        str(folder),
        f"--demo-postgres={ENDPOINTS.demo_postgres}",
        f"--demo-redis={ENDPOINTS.demo_redis}",
        f"--alert-sink={ENDPOINTS.alert_sink}",
        f"--project={project}",
    ]


def test_the_secrets_job_reads_the_project_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "POSTGRES_EXPORTER_DATABASE_URL",
        "REDIS_EXPORTER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    # The environment wins over .env, as in Compose.
    monkeypatch.setenv("REDIS_EXPORTER_URL", "redis://redis_exporter:from-env@cache:6379/0")
    project = tmp_path / "project"
    project.mkdir()
    business = f"postgresql://finance_exporter:{ENCODED}@db:5432/platform"
    (project / ".env").write_text(f"DATABASE_URL={business}\nREDIS_URL=redis://r:x@cache:6379/0\n")
    folder = tmp_path / "secrets"
    assert main(_flags(folder, project)) == 0
    assert (folder / "exporter_database_url").read_text() == business
    assert (folder / datastores.PG_URI_FILE).read_text() == "db:5432/platform\n"
    assert (folder / datastores.PG_PASSWORD_FILE).read_text() == RAW + "\n"
    passwords = json.loads((folder / datastores.REDIS_PASSWORDS_FILE).read_text())
    assert passwords["redis://redis_exporter@cache:6379/0"] == "from-env"
    assert RAW not in capsys.readouterr().err


def test_the_secrets_job_fails_on_a_bad_url_naming_its_line_not_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "POSTGRES_EXPORTER_DATABASE_URL",
        "REDIS_EXPORTER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("BIND_ADDRESS=127.0.0.1\nDATABASE_URL=postgresql://u:s3cret@/p\n")
    folder = tmp_path / "secrets"
    assert main(_flags(folder, project)) == 1
    err = capsys.readouterr().err
    assert err.startswith("finance_stack secrets: error: .env:2: DATABASE_URL is not a usable")
    assert "s3cret" not in err
    assert not folder.exists()  # nothing written
