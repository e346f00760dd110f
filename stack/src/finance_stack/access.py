"""The datastore users the stack's secrets configure, as data: names, key patterns, commands.

One source: secrets.py builds the Redis ACL file from these tuples, and the tests create the same
users from them with redis-py. The Postgres roles themselves are created by the demo's migrations
(demo/src/finance_demo/migrations/); a test checks that the names agree.
"""

from __future__ import annotations

# The business exporters (exporters/): read-only, only the key families they read, only the
# commands they send. HELLO and AUTH let a client log in.
POSTGRES_EXPORTER_ROLE = "finance_exporter"
REDIS_EXPORTER_USER = "finance_exporter"
REDIS_EXPORTER_KEYS = ("md:last_tick:*", "orders:queue:*", "signals:active:*")
REDIS_EXPORTER_COMMANDS = ("-@all", "+ping", "+mget", "+llen", "+scard", "+hello", "+auth")

# The redis-exporter service (REDIS_USER in docker-compose.yml): reads every key's type and size
# and the server's state. The commands are the ones redis_exporter 1.74 runs on every scrape; a
# denied one is a NOPERM error in its log.
REDIS_EXPORTER_SERVICE_USER = "redis_exporter"
REDIS_EXPORTER_SERVICE_KEYS = ("*",)
REDIS_EXPORTER_SERVICE_COMMANDS = (
    "-@all",
    "+@read",
    "+@connection",
    "+info",
    "+config|get",
    "+client|list",
    "+slowlog|get",
    "+slowlog|len",
    "+latency|latest",
    "+latency|histogram",
    "+memory|usage",
)
# The postgres-exporter service (DATA_SOURCE_USER in docker-compose.yml): pg_monitor only.
POSTGRES_EXPORTER_SERVICE_ROLE = "postgres_exporter"

# The demo platform (migration 003 creates its Postgres role): only the key families it writes,
# only the commands its handlers and the market-data feed send.
POSTGRES_PLATFORM_ROLE = "finance_platform"
REDIS_PLATFORM_USER = "finance_platform"
REDIS_PLATFORM_KEYS = ("md:last_tick:*", "md:ticks:*", "orders:queue:*", "signals:active:*")
REDIS_PLATFORM_COMMANDS = (
    "-@all",
    "+ping",
    "+set",
    "+hset",
    "+hget",
    "+rpush",
    "+lpop",
    "+sadd",
    "+spop",
    "+scard",
    "+multi",
    "+exec",
    "+discard",
    "+hello",
    "+auth",
)


def redis_acl_rules(keys: tuple[str, ...], commands: tuple[str, ...]) -> str:
    """The ACL file's rules for a user limited to `keys` and `commands` (no Pub/Sub channels)."""
    patterns = " ".join(f"~{key}" for key in keys)
    return f"resetchannels {patterns} {' '.join(commands)}"
