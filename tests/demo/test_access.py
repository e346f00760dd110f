"""One name per datastore user: the demo's roles (finance_demo.access), the roles its migrations
create, the users the stack's secrets name (finance_stack.access) and the compose file agree."""

from __future__ import annotations

import re

import yaml

import finance_demo.access as demo
import finance_demo.setup as setup
import finance_stack.access as stack
from support.repo import ROOT
from support.stack import ENDPOINTS

MIGRATIONS = ROOT / "demo" / "src" / "finance_demo" / "migrations"


def migration_roles() -> set[str]:
    """Every role a migration creates."""
    return {
        role
        for path in MIGRATIONS.glob("*.sql")
        for role in re.findall(r"\bCREATE ROLE (\w+)", path.read_text())
    }


def test_the_migrations_create_the_roles_the_demo_and_the_stack_name() -> None:
    assert migration_roles() == {demo.POSTGRES_EXPORTER_ROLE, demo.POSTGRES_PLATFORM_ROLE}
    assert (demo.POSTGRES_EXPORTER_ROLE, demo.POSTGRES_PLATFORM_ROLE) == (
        stack.POSTGRES_EXPORTER_ROLE,
        stack.POSTGRES_PLATFORM_ROLE,
    )


def test_the_postgres_exporter_services_role_is_the_one_setup_creates() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["postgres-exporter"]["environment"]
    assert environment["DATA_SOURCE_USER"] == demo.POSTGRES_EXPORTER_SERVICE_ROLE
    assert demo.POSTGRES_EXPORTER_SERVICE_ROLE == stack.POSTGRES_EXPORTER_SERVICE_ROLE


def test_the_redis_exporter_services_user_is_the_one_the_acl_file_holds() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["redis-exporter"]["environment"]["REDIS_USER"] == (
        stack.REDIS_EXPORTER_SERVICE_USER
    )


def test_setup_and_the_secrets_point_at_the_same_demo_datastores() -> None:
    """The demo's setup job and the secrets job (given its addresses by docker-compose.yml)
    name the same demo Postgres, database and Redis."""
    assert (f"{setup.DEMO_POSTGRES}/{setup.DEMO_DATABASE}", setup.DEMO_REDIS) == (
        ENDPOINTS.demo_postgres,
        ENDPOINTS.demo_redis,
    )
