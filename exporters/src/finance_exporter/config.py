"""Settings from flags, environment and the query file, as frozen dataclasses; all validation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from finance_exporter import yamlfile
from finance_exporter.domains import DOMAINS
from finance_exporter.errors import ConfigError, ConfigProblem
from finance_exporter.spec import QuerySpec, RedisRead

DEFAULT_PORTS = {"revenue": 9101, "signals": 9102, "portfolio": 9103}
DEFAULT_LISTEN_HOST = "127.0.0.1"
# Refresh at most this often; Prometheus scrapes every 15s by default.
DEFAULT_MIN_INTERVAL_SECONDS = 10.0
# Used when a scrape carries no X-Prometheus-Scrape-Timeout-Seconds header (Prometheus' default).
DEFAULT_SCRAPE_TIMEOUT_SECONDS = 10.0
# Leave this much of the scrape timeout for encoding and sending the response.
DEFAULT_SCRAPE_TIMEOUT_OFFSET_SECONDS = 0.5
DEFAULT_REDIS_TIMEOUT_SECONDS = 2.0
# Statement timeout of one chunk of a first fold (backfill.py). Nobody waits for it, so it is
# longer than any scrape; it doubles for a chunk of a single transaction id that still times out.
DEFAULT_BACKFILL_TIMEOUT_SECONDS = 30.0
# The OpenTelemetry SDK's own variable: set, the exporter sends its refresh spans there.
OTLP_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

_TOP_KEYS = {
    "min_interval_seconds",
    "scrape_timeout_seconds",
    "scrape_timeout_offset_seconds",
    "redis_timeout_seconds",
    "backfill_timeout_seconds",
    "queries",
}
_QUERY_KEYS = {
    "enabled",
    "sql",
    "timeout_seconds",
    "max_age_seconds",
    "key_template",
    "label_values",
}
_NUMBER_KEYS = ("timeout_seconds", "max_age_seconds")


@dataclass(frozen=True)
class Settings:
    """Everything an exporter process needs, read once at start."""

    exporter: str
    listen_host: str
    listen_port: int
    database_url: str | None
    redis_url: str | None
    config_file: Path | None
    checkpoint_dir: Path | None
    min_interval_seconds: float
    scrape_timeout_seconds: float
    scrape_timeout_offset_seconds: float
    redis_timeout_seconds: float
    queries: tuple[QuerySpec, ...]
    log_level: str = "INFO"
    # Base URL of an OTLP/HTTP receiver (Jaeger's :4318); None: no tracing at all.
    otlp_endpoint: str | None = None
    backfill_timeout_seconds: float = DEFAULT_BACKFILL_TIMEOUT_SECONDS

    def uses(self, source: str) -> bool:
        """True if any enabled query reads `source`."""
        return any(query.source == source for query in self.queries)


@dataclass(frozen=True)
class Options:
    """Raw inputs: command-line flags (None when not given) and the environment."""

    exporter: str
    environ: Mapping[str, str]
    config_file: str | None = None
    listen: str | None = None
    checkpoint_dir: str | None = None
    log_level: str | None = None


def load_settings(options: Options) -> Settings:
    """Build Settings, reporting every problem at once as one ConfigError."""
    problems: list[ConfigProblem] = []
    env = options.environ
    if options.exporter not in DOMAINS:
        known = ", ".join(sorted(DOMAINS))
        raise ConfigError(
            [
                ConfigProblem(
                    "<args>", None, "exporter", f"unknown {options.exporter!r}; known: {known}"
                )
            ]
        )
    host, port = _listen(options.listen or env.get("EXPORTER_LISTEN"), options.exporter, problems)
    database_url = _secret("DATABASE_URL", env, problems)
    redis_url = _secret("REDIS_URL", env, problems)
    config_name = options.config_file or env.get("EXPORTER_CONFIG")
    checkpoint = options.checkpoint_dir or env.get("EXPORTER_CHECKPOINT_DIR")
    settings = Settings(
        exporter=options.exporter,
        listen_host=host,
        listen_port=port,
        database_url=database_url,
        redis_url=redis_url,
        config_file=Path(config_name) if config_name else None,
        checkpoint_dir=Path(checkpoint) if checkpoint else None,
        min_interval_seconds=DEFAULT_MIN_INTERVAL_SECONDS,
        scrape_timeout_seconds=DEFAULT_SCRAPE_TIMEOUT_SECONDS,
        scrape_timeout_offset_seconds=DEFAULT_SCRAPE_TIMEOUT_OFFSET_SECONDS,
        redis_timeout_seconds=DEFAULT_REDIS_TIMEOUT_SECONDS,
        queries=DOMAINS[options.exporter],
        log_level=(options.log_level or env.get("EXPORTER_LOG_LEVEL") or "INFO").upper(),
        otlp_endpoint=_otlp_endpoint(env.get(OTLP_ENDPOINT_VARIABLE), problems),
    )
    if settings.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        problems.append(
            ConfigProblem(
                "<env>", None, "EXPORTER_LOG_LEVEL", f"unknown level {settings.log_level!r}"
            )
        )
    for source, variable in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")):
        if settings.uses(source) and not getattr(settings, variable.lower()):
            problems.append(
                ConfigProblem(
                    "<env>",
                    None,
                    variable,
                    f"required by the {options.exporter} exporter's {source} queries; "
                    f"set {variable} or {variable}_FILE",
                )
            )
    if settings.config_file is not None:
        try:
            settings = apply_file(settings, settings.config_file)
        except ConfigError as err:
            problems.extend(err.details)
    if problems:
        raise ConfigError(problems)
    return settings


def apply_file(settings: Settings, path: Path) -> Settings:
    """Apply the query file at `path` to `settings`; raise ConfigError listing every problem."""
    data = yamlfile.load(path)
    file = str(path)
    problems: list[ConfigProblem] = []
    if not isinstance(data, yamlfile.LinedMap):
        raise ConfigError([ConfigProblem(file, 1, "", "expected a mapping at the top level")])
    _unknown_keys(data, _TOP_KEYS, file, "", problems)
    numbers: dict[str, float] = {
        key: _positive(data, key, file, "", problems)
        for key in (
            "min_interval_seconds",
            "scrape_timeout_seconds",
            "scrape_timeout_offset_seconds",
            "redis_timeout_seconds",
            "backfill_timeout_seconds",
        )
        if key in data
    }
    queries = list(settings.queries)
    raw_queries = data.get("queries", yamlfile.LinedMap())
    if not isinstance(raw_queries, yamlfile.LinedMap):
        problems.append(
            ConfigProblem(
                file, data.lines.get("queries"), "queries", "expected a mapping of query names"
            )
        )
        raw_queries = yamlfile.LinedMap()
    all_queries = {q.name: q for domain in DOMAINS.values() for q in domain}
    mine = {q.name for q in settings.queries}
    for name, raw in raw_queries.items():
        line = raw_queries.lines[name]
        if name not in all_queries:
            known = ", ".join(sorted(all_queries))
            problems.append(
                ConfigProblem(file, line, f"queries.{name}", f"unknown query; known: {known}")
            )
            continue
        if not isinstance(raw, yamlfile.LinedMap):
            problems.append(ConfigProblem(file, line, f"queries.{name}", "expected a mapping"))
            continue
        updated = _override(all_queries[name], raw, file, line, problems)
        if name in mine:
            queries = [q for q in queries if q.name != name]
            if raw.get("enabled", True) is not False:
                queries.append(updated)
    if problems:
        raise ConfigError(problems)
    order = {q.name: i for i, q in enumerate(settings.queries)}
    queries.sort(key=lambda q: order[q.name])
    return replace(
        settings,
        queries=tuple(queries),
        min_interval_seconds=numbers.get("min_interval_seconds", settings.min_interval_seconds),
        scrape_timeout_seconds=numbers.get(
            "scrape_timeout_seconds", settings.scrape_timeout_seconds
        ),
        scrape_timeout_offset_seconds=numbers.get(
            "scrape_timeout_offset_seconds", settings.scrape_timeout_offset_seconds
        ),
        redis_timeout_seconds=numbers.get("redis_timeout_seconds", settings.redis_timeout_seconds),
        backfill_timeout_seconds=numbers.get(
            "backfill_timeout_seconds", settings.backfill_timeout_seconds
        ),
    )


def _override(
    spec: QuerySpec, raw: yamlfile.LinedMap, file: str, line: int, problems: list[ConfigProblem]
) -> QuerySpec:
    where = f"queries.{spec.name}"
    _unknown_keys(raw, _QUERY_KEYS, file, where, problems)
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        problems.append(
            ConfigProblem(file, raw.lines["enabled"], f"{where}.enabled", "expected true or false")
        )
    changes: dict[str, object] = {"origin": f"{file}:{line}"}
    for key in _NUMBER_KEYS:
        if key in raw:
            changes[key] = _positive(raw, key, file, where, problems)
    if spec.source == "postgres":
        for key in ("key_template", "label_values"):
            if key in raw:
                problems.append(
                    ConfigProblem(
                        file, raw.lines[key], f"{where}.{key}", "only Redis queries take this key"
                    )
                )
        if "sql" in raw:
            changes["sql"] = _sql(spec, raw, file, where, problems)
    else:
        if "sql" in raw:
            problems.append(
                ConfigProblem(
                    file,
                    raw.lines["sql"],
                    f"{where}.sql",
                    "a Redis query takes key_template and label_values, not sql",
                )
            )
        if spec.redis is not None and ("key_template" in raw or "label_values" in raw):
            changes["redis"] = _redis(spec, spec.redis, raw, file, where, problems)
    return replace(spec, **changes)  # type: ignore[arg-type]


def _sql(
    spec: QuerySpec, raw: yamlfile.LinedMap, file: str, where: str, problems: list[ConfigProblem]
) -> str:
    sql = raw["sql"]
    line = raw.lines["sql"]
    if not isinstance(sql, str) or not sql.strip():
        problems.append(
            ConfigProblem(file, line, f"{where}.sql", "expected a non-empty SQL string")
        )
        return spec.sql
    needed = ["low", "high"] if spec.incremental else []
    needed += ["buckets"] if spec.metric.buckets else []
    placeholders = set(re.findall(r"%\((\w+)\)s", sql))
    for name in needed:
        if name not in placeholders:
            problems.append(
                ConfigProblem(file, line, f"{where}.sql", f"missing placeholder %({name})s")
            )
    for name in sorted(placeholders - set(needed)):
        problems.append(
            ConfigProblem(
                file,
                line,
                f"{where}.sql",
                f"unknown placeholder %({name})s; allowed: {', '.join(needed) or 'none'}",
            )
        )
    return sql


def _redis(
    spec: QuerySpec,
    read: RedisRead,
    raw: yamlfile.LinedMap,
    file: str,
    where: str,
    problems: list[ConfigProblem],
) -> RedisRead:
    template = raw.get("key_template", read.key_template)
    if not isinstance(template, str) or template.count("{}") != 1:
        problems.append(
            ConfigProblem(
                file,
                raw.lines.get("key_template"),
                f"{where}.key_template",
                "expected a string with exactly one {} for the label value",
            )
        )
        template = read.key_template
    values = raw.get("label_values", list(read.label_values))
    line = raw.lines.get("label_values")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        problems.append(
            ConfigProblem(
                file,
                line,
                f"{where}.label_values",
                "expected a non-empty list of non-empty strings",
            )
        )
        return replace(read, key_template=template)
    if len(set(values)) != len(values):
        problems.append(ConfigProblem(file, line, f"{where}.label_values", "values must be unique"))
    if len(values) > spec.metric.max_series:
        problems.append(
            ConfigProblem(
                file,
                line,
                f"{where}.label_values",
                f"{len(values)} values exceed the series budget of {spec.metric.max_series}",
            )
        )
    return RedisRead(
        command=read.command, key_template=template, label_values=tuple(str(v) for v in values)
    )


def _positive(
    raw: yamlfile.LinedMap, key: str, file: str, where: str, problems: list[ConfigProblem]
) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(
            ConfigProblem(
                file,
                raw.lines[key],
                f"{where}.{key}".lstrip("."),
                f"expected a positive number of seconds, got {value!r}",
            )
        )
        return 1.0
    return float(value)


def _unknown_keys(
    raw: yamlfile.LinedMap, allowed: set[str], file: str, where: str, problems: list[ConfigProblem]
) -> None:
    for key in sorted(set(raw) - allowed):
        problems.append(
            ConfigProblem(
                file,
                raw.lines[key],
                f"{where}.{key}".lstrip("."),
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
            )
        )


def _listen(value: str | None, exporter: str, problems: list[ConfigProblem]) -> tuple[str, int]:
    default_port = DEFAULT_PORTS.get(exporter, 9100)
    if not value:
        return DEFAULT_LISTEN_HOST, default_port
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.append(
            ConfigProblem("<env>", None, "EXPORTER_LISTEN", f"expected HOST:PORT, got {value!r}")
        )
        return DEFAULT_LISTEN_HOST, default_port
    return host.strip("[]") or DEFAULT_LISTEN_HOST, int(port)


def _secret(name: str, env: Mapping[str, str], problems: list[ConfigProblem]) -> str | None:
    """Read NAME or, for secrets kept out of the environment, the file named by NAME_FILE."""
    file_name = env.get(f"{name}_FILE")
    if file_name and env.get(name):
        problems.append(ConfigProblem("<env>", None, name, f"set {name} or {name}_FILE, not both"))
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError as err:
            problems.append(
                ConfigProblem(file_name, None, f"{name}_FILE", f"cannot read: {err.strerror}")
            )
            return None
    return env.get(name) or None


def _otlp_endpoint(value: str | None, problems: list[ConfigProblem]) -> str | None:
    # Empty is unset: compose passes ${VAR:-} through as an empty string.
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            ConfigProblem(
                "<env>",
                None,
                OTLP_ENDPOINT_VARIABLE,
                f"expected an http:// or https:// URL, got {mask_url(value)!r}",
            )
        )
        return None
    return value


def mask_url(url: str | None) -> str:
    """The URL with its password replaced by ***, for logs."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
