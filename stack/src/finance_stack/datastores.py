"""Your own Postgres and Redis, as the server-level exporters see them.

When DATABASE_URL / REDIS_URL point the business exporters at your datastores, the stack also
runs postgres_exporter and redis_exporter against them (compose services app-postgres-exporter
and app-redis-exporter, profiles app-postgres and app-redis). Each may use its own monitoring
user: POSTGRES_EXPORTER_DATABASE_URL (a pg_monitor role) and REDIS_EXPORTER_URL (an ACL user
allowed INFO and friends), else the business URL. This module parses those URLs once, for
`settings` (which profiles run), `preflight` (a bad URL stops `start`, naming the variable and
its line of `.env`, never the value) and the secrets job (the files the exporters read).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from finance_stack.envfile import Setting, Settings

POSTGRES_PROFILE = "app-postgres"
REDIS_PROFILE = "app-redis"
POSTGRES_EXPECTED = "postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE[?sslmode=...]"
REDIS_EXPECTED = "redis[s]://[USER]:PASSWORD@HOST[:PORT][/DB]"
# postgres_exporter 0.17.1 connects with lib/pq 1.10.9, which knows only these (ssl.go); its
# default, without sslmode, is require.
PG_SSLMODES = ("disable", "require", "verify-ca", "verify-full")

# The secret files secrets-init writes for the two services (mode 0600, the exporters' uid).
# postgres_exporter reads DATA_SOURCE_{URI,USER,PASS}_FILE; redis_exporter a JSON map of
# address to password (REDIS_PASSWORD_FILE). Written empty when no URL is set.
PG_URI_FILE = "app_postgres_exporter_uri"
PG_USER_FILE = "app_postgres_exporter_user"
PG_PASSWORD_FILE = "app_postgres_exporter_password"
REDIS_PASSWORDS_FILE = "app_redis_exporter_passwords"
SECRET_FILES = (PG_URI_FILE, PG_USER_FILE, PG_PASSWORD_FILE, REDIS_PASSWORDS_FILE)
# What start exports for Compose: redis_exporter reads its address and user from the
# environment only (no *_FILE for them); neither holds the password.
REDIS_ADDR_VARIABLE = "APP_REDIS_EXPORTER_ADDR"
REDIS_USER_VARIABLE = "APP_REDIS_EXPORTER_USER"


class DatastoreURLError(ValueError):
    """A monitoring URL that cannot be used; the message names it and where it was set."""


@dataclass(frozen=True)
class PostgresTarget:
    """postgres_exporter's connection: DATA_SOURCE_URI (no credentials), user, password."""

    uri: str  # host[:port]/database[?query]
    user: str
    password: str
    source: str  # "DATABASE_URL (.env:3)"


@dataclass(frozen=True)
class RedisTarget:
    """redis_exporter's connection: REDIS_ADDR (no credentials), REDIS_USER, password."""

    address: str  # redis[s]://host[:port][/db]
    user: str
    password: str
    source: str


Target = TypeVar("Target", PostgresTarget, RedisTarget)


def _first_set(*candidates: Setting) -> Setting | None:
    return next((setting for setting in candidates if setting.value.strip()), None)


def postgres_setting(settings: Settings) -> Setting | None:
    """The URL app-postgres-exporter connects with: the monitoring one, else the business one."""
    return _first_set(settings.get("POSTGRES_EXPORTER_DATABASE_URL"), settings.get("DATABASE_URL"))


def redis_setting(settings: Settings) -> Setting | None:
    """The URL app-redis-exporter connects with: the monitoring one, else the business one."""
    return _first_set(settings.get("REDIS_EXPORTER_URL"), settings.get("REDIS_URL"))


def _problem(setting: Setting, kind: str, reason: str, expected: str) -> DatastoreURLError:
    # The value is never part of the message: it may hold a password.
    return DatastoreURLError(
        f"{setting.origin}: {setting.name} is not a usable {kind} URL: {reason};"
        f" expected {expected} (the value is not shown: it may hold a password)"
    )


def _split(
    setting: Setting, kind: str, schemes: tuple[str, ...], expected: str
) -> tuple[SplitResult, str]:
    try:
        parts = urlsplit(setting.value.strip())
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise _problem(setting, kind, "the host or port cannot be read", expected) from None
    if parts.scheme not in schemes:
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise _problem(setting, kind, f"{scheme}, not {' or '.join(schemes)}", expected)
    if not host:
        raise _problem(setting, kind, "no host (a Unix socket is not reachable)", expected)
    # host[:port] exactly as written (an IPv6 address keeps its brackets).
    return parts, parts.netloc.rpartition("@")[2]


def postgres_target(setting: Setting) -> PostgresTarget:
    """postgres_exporter's connection from a postgresql:// URL."""
    parts, hostport = _split(setting, "Postgres", ("postgresql", "postgres"), POSTGRES_EXPECTED)
    if not parts.username:
        raise _problem(setting, "Postgres", "no user name", POSTGRES_EXPECTED)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    misplaced = sorted({"user", "password", "passfile"} & set(query))
    if misplaced:
        where = ", ".join(misplaced)
        raise _problem(setting, "Postgres", f"{where} in the query string", POSTGRES_EXPECTED)
    sslmode = query.get("sslmode")
    if sslmode is not None and sslmode not in PG_SSLMODES:
        raise _problem(
            setting,
            "Postgres",
            f"sslmode={sslmode} is not one postgres_exporter (lib/pq) knows",
            f"sslmode one of {', '.join(PG_SSLMODES)}",
        )
    uri = hostport + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return PostgresTarget(
        uri=uri,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        source=f"{setting.name} ({setting.origin})",
    )


def redis_target(setting: Setting) -> RedisTarget:
    """redis_exporter's connection from a redis:// or rediss:// URL."""
    parts, hostport = _split(setting, "Redis", ("redis", "rediss"), REDIS_EXPECTED)
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise _problem(setting, "Redis", "the database is not a number", REDIS_EXPECTED)
    # The query (redis-py options) has no meaning for redis_exporter and is left out.
    path = f"/{database}" if database else ""
    return RedisTarget(
        address=f"{parts.scheme}://{hostport}{path}",
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        source=f"{setting.name} ({setting.origin})",
    )


def targets(settings: Settings) -> tuple[PostgresTarget | None, RedisTarget | None]:
    """Both monitoring targets (None where no URL is set); every bad URL in one error."""
    problems: list[str] = []
    postgres = _parsed(postgres_setting(settings), postgres_target, problems)
    redis = _parsed(redis_setting(settings), redis_target, problems)
    if problems:
        raise DatastoreURLError("\n".join(problems))
    return postgres, redis


def _parsed(
    setting: Setting | None, parse: Callable[[Setting], Target], problems: list[str]
) -> Target | None:
    if setting is None:
        return None
    try:
        return parse(setting)
    except DatastoreURLError as err:
        problems.append(str(err))
        return None


def profiles(settings: Settings) -> list[tuple[str, Setting]]:
    """The app-* profiles a set URL asks for, each with the setting that asks."""
    wanted = [
        (POSTGRES_PROFILE, postgres_setting(settings)),
        (REDIS_PROFILE, redis_setting(settings)),
    ]
    return [(profile, setting) for profile, setting in wanted if setting is not None]


def redis_password_map(target: RedisTarget) -> dict[str, str]:
    """redis_exporter's password file: the address, with the user in it, to the password.

    redis_exporter 1.74 looks the password up under REDIS_ADDR with REDIS_USER put in as Go's
    url.User renders it (exporter/redis.go, lookupPasswordInPasswordMap); Go escapes a user name
    like quote() with these characters kept. The bare address is the key without a user.
    """
    if not target.password:
        return {}
    keys = {target.address}
    if target.user:
        scheme, _, rest = target.address.partition("://")
        keys.add(f"{scheme}://{quote(target.user, safe='$&+,;=')}@{rest}")
    return dict.fromkeys(sorted(keys), target.password)


def secret_files(postgres: PostgresTarget | None, redis: RedisTarget | None) -> dict[str, str]:
    """The contents of SECRET_FILES (empty for a datastore without a URL)."""
    return {
        PG_URI_FILE: f"{postgres.uri}\n" if postgres else "",
        PG_USER_FILE: f"{postgres.user}\n" if postgres else "",
        PG_PASSWORD_FILE: f"{postgres.password}\n" if postgres else "",
        REDIS_PASSWORDS_FILE: json.dumps(redis_password_map(redis) if redis else {}) + "\n",
    }


def compose_exports(redis: RedisTarget | None) -> dict[str, str]:
    """The variables start exports for Compose: redis_exporter's address and user."""
    if redis is None:
        return {}
    return {REDIS_ADDR_VARIABLE: redis.address, REDIS_USER_VARIABLE: redis.user}
