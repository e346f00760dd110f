"""Generate the stack's secrets into a folder, each file owned by the uid that reads it.

Run by the `secrets-init` job in every profile: `python3 -m finance_stack secrets FOLDER --chown`.
Safe to re-run: a generated secret is kept forever after, the derived ones are rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from finance_stack import datastores
from finance_stack.access import (
    POSTGRES_EXPORTER_ROLE,
    POSTGRES_PLATFORM_ROLE,
    REDIS_EXPORTER_COMMANDS,
    REDIS_EXPORTER_KEYS,
    REDIS_EXPORTER_SERVICE_COMMANDS,
    REDIS_EXPORTER_SERVICE_KEYS,
    REDIS_EXPORTER_SERVICE_USER,
    REDIS_EXPORTER_USER,
    REDIS_PLATFORM_COMMANDS,
    REDIS_PLATFORM_KEYS,
    REDIS_PLATFORM_USER,
    redis_acl_rules,
)
from finance_stack.envfile import Settings

# Who reads each secret inside the stack. A secret file is 0600, so it is owned by the uid of
# the process that reads it: our images run as 10001, upstream Redis as 999, Elasticsearch,
# Kibana and Logstash as 1000, Grafana as 472. Postgres and the Elasticsearch setup job start as
# root and read anything.
EXPORTERS_UID = 10001
REDIS_UID = 999
ELASTIC_UID = 1000
GRAFANA_UID = 472
# Alertmanager (upstream image and the Debian stand-in) runs as nobody.
ALERTMANAGER_UID = 65534
# So does json_exporter (the logs-exporter service: its image's USER nobody).
JSON_EXPORTER_UID = 65534
# And Prometheus, which reads Uptime Kuma's API key; the kuma-setup job that writes the key runs
# as the same uid, and reads Kuma's admin password.
PROMETHEUS_UID = 65534
KUMA_SETUP_UID = PROMETHEUS_UID

GENERATED: dict[str, int] = {
    "postgres_password": EXPORTERS_UID,
    "exporter_pg_password": EXPORTERS_UID,
    "postgres_exporter_password": EXPORTERS_UID,
    "redis_admin_password": EXPORTERS_UID,
    "exporter_redis_password": EXPORTERS_UID,
    "redis_exporter_password": EXPORTERS_UID,
    # The demo platform (demo image, uid 10001): its Postgres role and Redis user.
    "platform_pg_password": EXPORTERS_UID,
    "platform_redis_password": EXPORTERS_UID,
    "grafana_admin_password": GRAFANA_UID,
    "grafana_es_password": GRAFANA_UID,
    "elastic_password": ELASTIC_UID,
    "kibana_system_password": ELASTIC_UID,
    "logstash_internal_password": ELASTIC_UID,
    # The logs-exporter's Elasticsearch user (logs_exporter: _count on two index patterns).
    "logs_exporter_es_password": JSON_EXPORTER_UID,
    # People's read-only Kibana login (user logs_viewer); only the setup job reads it.
    "logs_viewer_password": ELASTIC_UID,
    # kibana-setup's user (kibana_setup: imports the saved objects); it runs as uid 1000.
    "kibana_setup_password": ELASTIC_UID,
    # The elasticsearch-exporter's user (cluster monitor); the exporter runs as uid 1000.
    "elasticsearch_exporter_password": ELASTIC_UID,
    # Backup and restore's user (elasticsearch_snapshot: snapshots of the log indices and their
    # restore); the elastic-worker runs as uid 1000.
    "elasticsearch_snapshot_password": ELASTIC_UID,
    # Uptime Kuma's admin account (user admin), created by kuma-setup on Kuma's first run.
    "kuma_admin_password": KUMA_SETUP_UID,
}
DERIVED: dict[str, int] = {
    "redis_acl": REDIS_UID,
    "redis_exporter_passwords": EXPORTERS_UID,
    "exporter_database_url": EXPORTERS_UID,
    "exporter_redis_url": EXPORTERS_UID,
    "platform_database_url": EXPORTERS_UID,
    "platform_redis_url": EXPORTERS_UID,
}
# The demo datastores (compose services demo-postgres, demo-redis), where every URL points unless
# DATABASE_URL / REDIS_URL say otherwise.


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's own services listen, as docker-compose.yml says (the secrets-init
    service's command passes them): the demo datastores and the local alert sink."""

    demo_postgres: str  # host:port/database
    demo_redis: str  # host:port
    alert_sink: str  # http://host:port


# The receiver secrets alertmanager.yml reads (folder `alerting`, mounted at
# /run/secrets/alerting), each with its default: the local alert-sink service, so that with
# nothing configured every notification still lands where it can be checked. A file the user
# has filled in (a Slack webhook URL, a PagerDuty integration key) is never overwritten.
ALERTING_FOLDER = "alerting"
ALERTING_TEAMS = ("sre", "platform", "payments", "trading", "business", "security", "ai")
# Each receiver secret and its default: a path on the alert sink, or a literal value.
ALERTING: dict[str, str] = {
    **{f"slack_{team}_url": f"/slack/{team}" for team in ALERTING_TEAMS},
    # Each team's PagerDuty service (an Events API v2 integration key). Not PagerDuty keys by
    # default: global.pagerduty_url sends events to the alert-sink, which records the key, so a
    # page shows which team's service it was addressed to.
    **{f"pagerduty_{team}_routing_key": f"local-{team}" for team in ALERTING_TEAMS},
    # The dead man's switch: a heartbeat URL (healthchecks.io, Dead Man's Snitch, Cronitor).
    "watchdog_url": "/watchdog",
    # The SMTP password of global.smtp_auth_username; unused while that is empty (the alert-sink).
    "smtp_password": "",
}


# Uptime Kuma's API key (api_key, made once by kuma-setup) in a folder of its own, owned by the
# uid of the job that writes it and of Prometheus, which reads it: mounted as a folder, so a new
# key is written aside and renamed, never read half-written.
KUMA_KEY_FOLDER = "uptime-kuma"


def alerting_defaults(alert_sink: str) -> dict[str, str]:
    """The receiver secrets' defaults with the alert sink's URL."""
    return {
        name: f"{alert_sink}{value}" if value.startswith("/") else value
        for name, value in ALERTING.items()
    }


def _acl(name: str, password: str, rules: str) -> str:
    # Only the SHA-256 of each password is written to the ACL file.
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user {name} on #{digest} {rules}"


def derive(
    values: Mapping[str, str], environ: Mapping[str, str], endpoints: Endpoints
) -> dict[str, str]:
    """The secrets computed from the generated ones (and from DATABASE_URL / REDIS_URL if set)."""
    acl = [
        # Unauthenticated clients may only ping (the healthcheck) and log in.
        "user default on nopass resetchannels -@all +ping +auth +hello",
        _acl("admin", values["redis_admin_password"], "~* &* +@all"),
        _acl(
            REDIS_EXPORTER_USER,
            values["exporter_redis_password"],
            redis_acl_rules(REDIS_EXPORTER_KEYS, REDIS_EXPORTER_COMMANDS),
        ),
        _acl(
            REDIS_EXPORTER_SERVICE_USER,
            values["redis_exporter_password"],
            redis_acl_rules(REDIS_EXPORTER_SERVICE_KEYS, REDIS_EXPORTER_SERVICE_COMMANDS),
        ),
        _acl(
            REDIS_PLATFORM_USER,
            values["platform_redis_password"],
            redis_acl_rules(REDIS_PLATFORM_KEYS, REDIS_PLATFORM_COMMANDS),
        ),
    ]
    postgres_address, redis_address = endpoints.demo_postgres, endpoints.demo_redis
    exporter_pg = quote(values["exporter_pg_password"], safe="")
    exporter_redis = quote(values["exporter_redis_password"], safe="")
    platform_pg = quote(values["platform_pg_password"], safe="")
    platform_redis = quote(values["platform_redis_password"], safe="")
    # redis_exporter reads a JSON map of Redis address to password. Since v1.70 it looks the
    # address up with the user in it (exporter/redis.go, lookupPasswordInPasswordMap); the bare
    # address is what older versions look up.
    exporter_passwords = {
        f"redis://{REDIS_EXPORTER_SERVICE_USER}@{redis_address}": values["redis_exporter_password"],
        f"redis://{redis_address}": values["redis_exporter_password"],
    }
    return {
        "redis_acl": "\n".join(acl) + "\n",
        "redis_exporter_passwords": json.dumps(exporter_passwords) + "\n",
        "exporter_database_url": environ.get("DATABASE_URL")
        or f"postgresql://{POSTGRES_EXPORTER_ROLE}:{exporter_pg}@{postgres_address}",
        "exporter_redis_url": environ.get("REDIS_URL")
        or f"redis://{REDIS_EXPORTER_USER}:{exporter_redis}@{redis_address}/0",
        # The demo platform writes: always the demo datastores, never DATABASE_URL / REDIS_URL.
        "platform_database_url": (
            f"postgresql://{POSTGRES_PLATFORM_ROLE}:{platform_pg}@{postgres_address}"
        ),
        "platform_redis_url": f"redis://{REDIS_PLATFORM_USER}:{platform_redis}@{redis_address}/0",
    }


# The connection files of app-postgres-exporter and app-redis-exporter (uid 10001 in
# docker-compose.yml), derived from your datastores' monitoring URLs (finance_stack.datastores).
APP_EXPORTERS: dict[str, int] = dict.fromkeys(datastores.SECRET_FILES, EXPORTERS_UID)


def app_exporter_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The app exporters' files from POSTGRES_EXPORTER_DATABASE_URL or DATABASE_URL and
    REDIS_EXPORTER_URL or REDIS_URL (empty when unset); a bad URL raises DatastoreURLError."""
    postgres, redis = datastores.targets(project_settings(None, environ))
    return datastores.secret_files(postgres, redis)


def project_settings(project: Path | None, environ: Mapping[str, str]) -> Settings:
    """The datastore variables as Compose sees them: the environment, then the project's .env.

    secrets-init reads .env itself (the project folder, mounted read-only) rather than through
    Compose's `environment:`, which would put the URLs, passwords included, into
    `docker compose config` and into the rendered project that start keeps."""
    # Without a project folder there is no .env: a folder that holds none stands for it.
    return Settings(project if project is not None else Path("/nonexistent"), environ)


def project_environ(settings: Settings) -> dict[str, str]:
    """The datastore variables that are set, for write_secrets."""
    found = [
        settings.get("DATABASE_URL"),
        settings.get("REDIS_URL"),
        settings.get("POSTGRES_EXPORTER_DATABASE_URL"),
        settings.get("REDIS_EXPORTER_URL"),
    ]
    return {setting.name: setting.value for setting in found if setting.is_set}


@dataclass(frozen=True)
class SecretsReport:
    """Which secret files were created and which were kept."""

    created: list[str]
    kept: list[str]


def write_secrets(
    folder: Path, environ: Mapping[str, str], chown: bool, endpoints: Endpoints
) -> SecretsReport:
    """Create missing secrets (kept forever after) and rewrite the derived ones; all 0600."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    created, kept, values = [], [], {}
    for name in GENERATED:
        path = folder / name
        if path.exists() and path.read_text(encoding="utf-8").strip():
            values[name] = path.read_text(encoding="utf-8").strip()
            kept.append(name)
        else:
            values[name] = secrets.token_urlsafe(24)
            created.append(name)
    contents = {
        **{name: values[name] + "\n" for name in GENERATED},
        **derive(values, environ, endpoints),
        **app_exporter_secrets(environ),
    }
    owners = {**GENERATED, **DERIVED, **APP_EXPORTERS}
    for name, text in contents.items():
        _write_private(folder / name, text, owners[name] if chown else None)
    return SecretsReport(created=created, kept=kept)


def write_alerting_secrets(folder: Path, chown: bool, alert_sink: str) -> SecretsReport:
    """Write each missing receiver secret with its alert-sink default; keep the others."""
    uid = ALERTMANAGER_UID if chown else None
    _private_folder(folder, uid)
    created, kept = [], []
    for name, default in alerting_defaults(alert_sink).items():
        path = folder / name
        # An empty file is kept only where empty is the default (no SMTP password).
        if path.exists() and (path.read_text(encoding="utf-8").strip() or not default):
            kept.append(name)
            # A file written by hand is given to its reader too, or Alertmanager cannot read it.
            if uid is not None:
                os.chown(path, uid, uid)
            path.chmod(0o600)
        else:
            _write_private(path, default + "\n", uid)
            created.append(name)
    return SecretsReport(created=created, kept=kept)


def prepare_key_folder(folder: Path, chown: bool) -> None:
    """The API key's folder, 0700, given to kuma-setup's uid with what it holds."""
    uid = KUMA_SETUP_UID if chown else None
    _private_folder(folder, uid)
    for path in folder.iterdir():
        if uid is not None:
            os.chown(path, uid, uid)
        path.chmod(0o600)


def _private_folder(folder: Path, uid: int | None) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if uid is not None:
        os.chown(folder, uid, uid)


def _write_private(path: Path, text: str, uid: int | None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if uid is not None:
        os.chown(tmp, uid, uid)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _progress(message: str) -> None:
    print(f"[+] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    """`secrets FOLDER [--chown] --demo-postgres … --demo-redis … --alert-sink …`: write the
    stack's secrets and the alerting receivers' files."""
    parser = argparse.ArgumentParser(
        prog="finance_stack secrets",
        description="Generate the stack's secrets into FOLDER (kept across runs; all mode 0600).",
        epilog="environment (then PROJECT/.env): DATABASE_URL, REDIS_URL replace the demo"
        " datastores' URLs; POSTGRES_EXPORTER_DATABASE_URL, REDIS_EXPORTER_URL (else those two)"
        " are what app-postgres-exporter and app-redis-exporter connect with\n\n"
        "exit status: 0 ok, 1 error, 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="where the secret files go (mode 0600)")
    parser.add_argument("--chown", action="store_true", help="give each file to its reader's uid")
    parser.add_argument(
        "--demo-postgres", required=True, help="HOST:PORT/DATABASE of demo-postgres"
    )
    parser.add_argument("--demo-redis", required=True, help="HOST:PORT of demo-redis")
    parser.add_argument("--alert-sink", required=True, help="http://HOST:PORT of the alert sink")
    parser.add_argument("--project", type=Path, help="the project folder, whose .env is read")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        endpoints = Endpoints(args.demo_postgres, args.demo_redis, args.alert_sink)
        settings = project_settings(args.project, os.environ)
        datastores.targets(settings)  # a bad URL fails here, named with its line of .env
        environ = project_environ(settings)
        report = write_secrets(args.folder, environ, chown=args.chown, endpoints=endpoints)
        _progress(
            f"secrets in {args.folder}: created {len(report.created)}, kept {len(report.kept)}"
        )
        folder = args.folder / ALERTING_FOLDER
        alerting = write_alerting_secrets(folder, chown=args.chown, alert_sink=args.alert_sink)
        _progress(
            f"alerting receivers in {folder}: {len(alerting.kept)} configured, "
            f"{len(alerting.created)} new pointing at the local alert-sink"
        )
        prepare_key_folder(args.folder / KUMA_KEY_FOLDER, chown=args.chown)
    except (ValueError, OSError) as err:
        # ValueError includes DatastoreURLError and EnvFileError: neither shows a value.
        print(f"finance_stack secrets: error: {err}", file=sys.stderr)
        return 1
    return 0
