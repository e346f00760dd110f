"""Check every config of the stack offline (start-monitoring.sh validate, and `start` first).

Each problem is printed as `[x] FILE[:LINE]: PROBLEM`; the exit status is 1 if any was found.
The real tools decide where they exist (docker compose config, promtool, amtool): from PATH, or
else from the pinned Prometheus and Alertmanager images when the engine has them (no network,
the config mounted read-only). The rest is parsed here: `.env`, YAML and JSON with their line
numbers, Grafana uids, Logstash pipeline structure, logs/rules.yml against what it generates
(monitoring/logs/), Filebeat's output and project filter, and Uptime Kuma's monitors file against
what the compose file generates (monitoring/uptime.py). PyYAML is the one library it uses.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finance_stack import compose, images, state, validate_elastic
from finance_stack.compose import Project
from finance_stack.envfile import EnvFileError, Settings

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a problem below
    yaml = None  # type: ignore[assignment]

TOOL_TIMEOUT_SECONDS = 120
LOGSTASH_SECTIONS = {"input", "filter", "output"}


@dataclass(frozen=True)
class Problem:
    """One invalid thing, where it is."""

    file: str
    line: int | None
    text: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.text}"


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def load_yaml(root: Path, path: Path, problems: list[Problem]) -> Any:
    """Parse a YAML file; a syntax error becomes a problem with its line."""
    if yaml is None:
        problems.append(
            Problem(_rel(root, path), None, "PyYAML missing: apt-get install python3-yaml")
        )
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        problems.append(Problem(_rel(root, path), line, f"invalid YAML: {err.problem}"))
    except OSError as err:
        problems.append(Problem(_rel(root, path), None, f"cannot read: {err.strerror}"))
    return None


def _run(root: Path, argv: list[str], file: Path, tool: str | None = None) -> list[Problem]:
    """Run a checking tool; its complaint, named after the tool, is the file's problem."""
    tool = tool or Path(argv[0]).name
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
            cwd=root,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return [Problem(_rel(root, file), None, f"{tool} failed to run: {err}")]
    if result.returncode == 0:
        return []
    output = (result.stderr + result.stdout).strip().splitlines()
    detail = "; ".join(line.strip() for line in output if line.strip() and "SUCCESS" not in line)
    return [Problem(_rel(root, file), None, f"{tool}: {detail}")]


def check_compose(root: Path) -> list[Problem]:
    """`docker compose config` with every profile, when Docker's CLI is installed."""
    compose_file = root / "docker-compose.yml"
    problems: list[Problem] = []
    load_yaml(root, compose_file, problems)
    if problems or shutil.which("docker") is None:
        return problems
    if check_env(root):
        return []  # Compose would only repeat what check_env says, less clearly
    try:
        compose.run(root, ["config", "--quiet"], dict(os.environ), all_profiles=True)
    except compose.ComposeError as err:
        return [Problem(_rel(root, compose_file), None, str(err))]
    return []


def _pinned_image(root: Path, service: str) -> str | None:
    """The image a service runs, when the engine has it (validate never pulls)."""
    if shutil.which("docker") is None:
        return None
    kept = state.read(root, state.PROJECT_FILE)
    image = None
    if kept:
        known = Project.from_json(kept).services.get(service)
        image = known.image if known else None
    if image is None:
        image = _rendered_image(root, service)
    if image is None:
        return None
    return image if images.present(image, os.environ) else None


def _rendered_image(root: Path, service: str) -> str | None:
    try:
        result = subprocess.run(
            [*compose.argv(root, "config", "--format", "json", all_profiles=True)],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
        return str(json.loads(result.stdout)["services"][service]["image"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        return None


def _tool(root: Path, tool: str, service: str, folder: str, args: list[str]) -> list[str] | None:
    """argv running `tool` from PATH, else from the service's pinned image; None if neither."""
    found = shutil.which(tool)
    if found is not None:
        return [found, *(arg.replace("{folder}", str(root / folder)) for arg in args)]
    image = _pinned_image(root, service)
    if image is None:
        return None
    inside = f"/etc/{folder}"
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{root / folder}:{inside}:ro",
        "--entrypoint",
        tool,
        image,
        *(arg.replace("{folder}", inside) for arg in args),
    ]


def _no_tool(root: Path, config: Path, tool: str, service: str) -> Problem:
    return Problem(
        _rel(root, config),
        None,
        f"{tool} not found: install it on PATH, or let the engine have the {service} image"
        f" (./start-monitoring.sh start pulls it), then re-run",
    )


def check_prometheus(
    root: Path, name: str = "prometheus.yml", options: tuple[str, ...] = ()
) -> list[Problem]:
    """promtool check config, which also checks every rule file it names (unless `options` say
    --syntax-only)."""
    config = root / "prometheus" / name
    args = ["check", "config", *options, f"{{folder}}/{name}"]
    argv = _tool(root, "promtool", "prometheus", "prometheus", args)
    if argv is None:
        return [_no_tool(root, config, "promtool", "prometheus")]
    return _run(root, argv, config, "promtool")


def check_alertmanager(root: Path) -> list[Problem]:
    """amtool check-config."""
    config = root / "alertmanager" / "alertmanager.yml"
    argv = _tool(
        root,
        "amtool",
        "alertmanager",
        "alertmanager",
        ["check-config", "{folder}/alertmanager.yml"],
    )
    if argv is None:
        return [_no_tool(root, config, "amtool", "alertmanager")]
    return _run(root, argv, config, "amtool")


def check_scale(root: Path) -> list[Problem]:
    """The scale-out override (docs/scale-out.md): Compose merges it onto docker-compose.yml, and
    promtool accepts the Prometheus config it mounts. What the base checks report (a broken
    docker-compose.yml, a broken rule file) is not reported again here."""
    override = root / compose.SCALE_FILE
    if not override.exists():
        return []
    problems: list[Problem] = []
    load_yaml(root, override, problems)
    if problems:
        return problems
    if shutil.which("docker") is not None and not check_env(root) and not check_compose(root):
        try:
            compose.run(
                root,
                ["config", "--quiet"],
                dict(os.environ),
                all_profiles=True,
                overrides=(compose.SCALE_FILE,),
            )
        except compose.ComposeError as err:
            problems.append(Problem(_rel(root, override), None, str(err)))
    return problems + check_prometheus(root, "prometheus.scale.yml", ("--syntax-only",))


def check_env(root: Path) -> list[Problem]:
    """`.env` parses the way Compose reads it, and every port variable set in it is a port."""
    if not (root / ".env").is_file():
        return []
    try:
        settings = Settings(root, environ={})
    except EnvFileError as err:
        file, number, text = str(err).split(":", 2)
        return [Problem(file, int(number), text.strip())]
    problems = []
    for name, (value, line) in sorted(settings.env_file.items(), key=lambda item: item[1][1]):
        if name.endswith("_PORT") and not (value.isdigit() and 1 <= int(value) <= 65535):
            problems.append(Problem(".env", line, f"{name}={value} is not a TCP port (1-65535)"))
    return problems


def _datasource_problems(root: Path, path: Path, uids: set[str]) -> list[Problem]:
    """A provisioning file parses and gives each datasource a uid not in `uids` (updated)."""
    problems: list[Problem] = []
    document = load_yaml(root, path, problems)
    if not isinstance(document, dict):
        return problems
    for source in document.get("datasources") or []:
        uid = source.get("uid")
        if not uid:
            problems.append(
                Problem(_rel(root, path), None, f"datasource {source.get('name')!r} has no uid")
            )
        elif uid in uids:
            problems.append(Problem(_rel(root, path), None, f"duplicate datasource uid {uid!r}"))
        uids.add(str(uid))
    return problems


def check_grafana(root: Path) -> list[Problem]:
    """Provisioning parses, datasource uids are unique, dashboards parse and use known uids; the
    scale-out override's datasources (grafana/scale/, mounted over the provisioned file) too."""
    problems: list[Problem] = []
    uids: set[str] = set()
    for path in sorted((root / "grafana" / "provisioning").rglob("*.yml")):
        problems += _datasource_problems(root, path, uids)
    scale = root / "grafana" / "scale" / "datasources.yml"
    if scale.exists():
        problems += _datasource_problems(root, scale, set())
    for path in sorted((root / "grafana" / "dashboards").rglob("*.json")):
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            problems.append(Problem(_rel(root, path), err.lineno, f"invalid JSON: {err.msg}"))
            continue
        for uid in sorted(set(_datasource_uids(dashboard)) - uids):
            problems.append(
                Problem(
                    _rel(root, path),
                    None,
                    f"unknown datasource uid {uid!r}; provisioned: {', '.join(sorted(uids))}",
                )
            )
    return problems


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if (
            isinstance(source, dict)
            and isinstance(source.get("uid"), str)
            and not source["uid"].startswith("$")
        ):
            yield source["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)


def check_logstash(root: Path) -> list[Problem]:
    """pipelines.yml names existing files; each pipeline has balanced braces and known sections;
    logs/rules.yml is valid and what it generates (the pipelines, the redaction modules) is
    current. A pipeline broken by hand is reported once, as broken, not also as stale."""
    problems: list[Problem] = []
    pipelines = root / "logstash" / "config" / "pipelines.yml"
    load_yaml(root, root / "logstash" / "config" / "logstash.yml", problems)
    for entry in load_yaml(root, pipelines, problems) or []:
        inside = str(entry.get("path.config", ""))
        local = root / "logstash" / "pipeline" / Path(inside).name
        if not local.exists():
            problems.append(
                Problem(
                    _rel(root, pipelines),
                    None,
                    f"pipeline file {inside} does not exist (looked for {_rel(root, local)})",
                )
            )
    for path in sorted((root / "logstash" / "pipeline").glob("*.conf")):
        problems.extend(_logstash_structure(root, path))
    return problems or _logs_rules(root)


def _logs_rules(root: Path) -> list[Problem]:
    if yaml is None:
        return []  # load_yaml has said PyYAML is missing
    sys.path.insert(0, str(root))  # monitoring/logs/: standard library and PyYAML only
    try:
        logs = importlib.import_module("monitoring.logs")
    finally:
        sys.path.remove(str(root))
    try:
        files = logs.render(logs.load(root / logs.RULES))
    except logs.RulesError as err:
        return [Problem(*_split_problem(line)) for line in err.problems]
    return [
        Problem(
            str(path),
            None,
            f"not what {logs.RULES} generates: run python -m monitoring generate",
        )
        for path, text in sorted(files.items())
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def check_uptime(root: Path) -> list[Problem]:
    """uptime-kuma/monitors.yml is what docker-compose.yml, monitoring/inventory.yml and
    uptime-kuma/extra-monitors.yml generate (monitoring/uptime.py), and those make a valid one.
    A compose file that does not parse is the compose check's to report."""
    if yaml is None:
        return []  # load_yaml has said PyYAML is missing
    if load_yaml(root, root / compose.COMPOSE_FILE, []) is None:
        return []
    sys.path.insert(0, str(root))  # monitoring/uptime*.py: standard library and PyYAML only
    try:
        inventory = importlib.import_module("monitoring.inventory")
        uptime = importlib.import_module("monitoring.uptime")
    finally:
        sys.path.remove(str(root))
    try:
        files = uptime.render(root, inventory.load(root / "monitoring" / "inventory.yml"))
    except (uptime.UptimeError, inventory.InventoryError) as err:
        file, _, text = str(err).partition(": ")
        return [Problem(file, None, text)]
    return [
        Problem(
            str(path),
            None,
            "not what docker-compose.yml and uptime-kuma/extra-monitors.yml generate: run"
            " python -m monitoring generate",
        )
        for path, text in sorted(files.items())
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def _split_problem(line: str) -> tuple[str, int | None, str]:
    """`file:line: text` (or `file: text`) into a Problem's parts."""
    where, text = line.split(": ", 1)
    file, _, number = where.partition(":")
    return file, int(number) if number.isdigit() else None, text


def _logstash_structure(root: Path, path: Path) -> list[Problem]:
    depth, opened = 0, []
    quote: str | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw if quote else re.sub(r"#.*$", "", raw)
        for index, char in enumerate(line):
            if quote:
                if char == quote and line[index - 1] != "\\":
                    quote = None
                continue
            if char in "\"'":
                quote = char
            elif char == "{":
                if depth == 0:
                    section = line[:index].strip().split()[-1:] or [""]
                    if section[0] not in LOGSTASH_SECTIONS:
                        return [
                            Problem(
                                _rel(root, path),
                                number,
                                f"unknown section {section[0]!r}; expected input, filter or output",
                            )
                        ]
                depth += 1
                opened.append(number)
            elif char == "}":
                if depth == 0:
                    return [Problem(_rel(root, path), number, "unbalanced '}'")]
                depth -= 1
                opened.pop()
    if quote:
        return [Problem(_rel(root, path), None, f"unterminated {quote} string")]
    if depth:
        return [Problem(_rel(root, path), opened[-1], "'{' is never closed")]
    return []


def check_elastic(root: Path) -> list[Problem]:
    """Elasticsearch and Kibana settings parse as YAML mappings; the setup job's roles, users,
    templates and ILM policies and Kibana's saved objects parse and reference only each other
    (finance_stack.validate_elastic)."""
    problems: list[Problem] = []
    for path in (root / "elasticsearch" / "elasticsearch.yml", root / "kibana" / "kibana.yml"):
        document = load_yaml(root, path, problems)
        if document is not None and not isinstance(document, dict):
            problems.append(Problem(_rel(root, path), 1, "expected a mapping of settings"))
    problems += [Problem(p.file, p.line, p.text) for p in validate_elastic.check(root)]
    return problems


# Filebeat (filebeat/filebeat.yml) ships to Logstash's Beats input: the port Logstash's container
# listens on is the target of the compose port published as LOGSTASH_BEATS_PORT, and the
# pipeline's `beats { port => N }` must say the same.
FILEBEAT_CONFIG = Path("filebeat") / "filebeat.yml"
BEATS_PORT_VARIABLE = "LOGSTASH_BEATS_PORT"
_BEATS_INPUT = re.compile(r"\bbeats\s*\{[^}]*?\bport\s*=>\s*(\d+)")


def _key_line(text: str, *keys: str) -> int | None:
    """The 1-based line of the YAML key at `keys` (mapping keys, outermost first)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return line
        found = next((pair for pair in node.value if pair[0].value == key), None)
        if found is None:
            return line
        line, node = found[0].start_mark.line + 1, found[1]
    return line


def _compose_beats_port(root: Path) -> int | None:
    """The container port of logstash's published LOGSTASH_BEATS_PORT; 0 when the compose file
    does not parse (the compose check reports that)."""
    broken: list[Problem] = []
    document = load_yaml(root, root / compose.COMPOSE_FILE, broken)
    if broken:
        return 0
    services = document.get("services") if isinstance(document, dict) else None
    logstash = services.get("logstash") if isinstance(services, dict) else None
    for entry in (logstash or {}).get("ports") or []:
        if BEATS_PORT_VARIABLE in str(entry):
            # Short syntax HOST:PUBLISHED:TARGET[/PROTOCOL], or the long one's target.
            written = entry.get("target", "") if isinstance(entry, dict) else entry
            target = str(written).rsplit(":", 1)[-1].split("/")[0]
            return int(target) if target.isdigit() else None
    return None


def _filebeat_output(root: Path, document: dict[str, Any], text: str) -> list[Problem]:
    """output.logstash alone, every host `logstash:PORT` with Logstash's Beats port."""
    where = _rel(root, root / FILEBEAT_CONFIG)
    outputs = {f"output.{k}": v for k, v in (document.get("output") or {}).items()}
    outputs |= {k: v for k, v in document.items() if k.startswith("output.")}
    if set(outputs) != {"output.logstash"}:
        named = ", ".join(sorted(outputs)) or "no output"
        return [Problem(where, None, f"{named}: ship to Logstash only (output.logstash)")]
    line = _key_line(text, "output.logstash", "hosts") or _key_line(text, "output", "logstash")
    hosts = (outputs["output.logstash"] or {}).get("hosts") or []
    port = _compose_beats_port(root)
    if port == 0:
        return []
    if port is None:
        return [
            Problem(
                compose.COMPOSE_FILE,
                None,
                f"logstash publishes no {BEATS_PORT_VARIABLE} port: Filebeat cannot be checked",
            )
        ]
    problems = [
        Problem(
            where,
            line,
            f"output.logstash.hosts has {host!r}: Logstash's Beats input is logstash:{port}"
            f" (the logstash service's {BEATS_PORT_VARIABLE} port in docker-compose.yml)",
        )
        for host in hosts or ["nothing"]
        if str(host) != f"logstash:{port}"
    ]
    for path in sorted((root / "logstash" / "pipeline").glob("*.conf")):
        pipeline = path.read_text(encoding="utf-8")
        for found in _BEATS_INPUT.finditer(pipeline):
            if int(found.group(1)) != port:
                problems.append(
                    Problem(
                        _rel(root, path),
                        pipeline.count("\n", 0, found.start()) + 1,
                        f"beats input on port {found.group(1)}, docker-compose.yml publishes"
                        f" {BEATS_PORT_VARIABLE} from {port}, where Filebeat sends",
                    )
                )
    return problems


def _mentions(node: Any, text: str) -> bool:
    if isinstance(node, dict):
        return any(text in str(key) or _mentions(value, text) for key, value in node.items())
    if isinstance(node, list):
        return any(_mentions(item, text) for item in node)
    return False


def check_filebeat(root: Path) -> list[Problem]:
    """filebeat.yml parses, ships only this compose project's containers, to Logstash's Beats
    port, and only its owner may write it: Filebeat runs as root with --strict.perms=false (the
    repository's file is not root's), so this is the half of Filebeat's own check that holds."""
    path = root / FILEBEAT_CONFIG
    where = _rel(root, path)
    problems: list[Problem] = []
    document = load_yaml(root, path, problems)
    if problems:
        return problems
    if not isinstance(document, dict):
        return [Problem(where, 1, "expected a mapping of settings")]
    mode = path.stat().st_mode & 0o777
    if mode & 0o022:
        problems.append(
            Problem(
                where,
                None,
                f"writable by group or others (mode {mode:04o}): Filebeat runs it as root;"
                f" chmod go-w {FILEBEAT_CONFIG}",
            )
        )
    autodiscover = document.get("filebeat.autodiscover") or (document.get("filebeat") or {}).get(
        "autodiscover", {}
    )
    providers = [p for p in autodiscover.get("providers") or [] if p.get("type") == "docker"]
    if not any(
        _mentions(t.get("condition"), "com.docker.compose.project")
        for p in providers
        for t in p.get("templates") or []
    ):
        problems.append(
            Problem(
                where,
                _key_line(path.read_text(encoding="utf-8"), "filebeat.autodiscover"),
                "no docker autodiscover template limited to this compose project"
                " (a condition on docker.container.labels.com.docker.compose.project)",
            )
        )
    return problems + _filebeat_output(root, document, path.read_text(encoding="utf-8"))


CHECKS = {
    ".env": check_env,
    "compose": check_compose,
    "prometheus (promtool)": check_prometheus,
    "alertmanager (amtool)": check_alertmanager,
    "scale-out override": check_scale,
    "grafana": check_grafana,
    "logstash": check_logstash,
    "filebeat": check_filebeat,
    "elasticsearch, kibana": check_elastic,
    "uptime kuma monitors": check_uptime,
}


def main(argv: list[str]) -> int:
    """Run every check, print one line per check and per problem, exit 1 on any problem."""
    parser = argparse.ArgumentParser(prog="finance_stack validate")
    parser.add_argument("--root", type=Path, required=True)
    root = parser.parse_args(argv).root.resolve()
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    ok, bad = ("\033[32m[+]\033[0m", "\033[31m[x]\033[0m") if color else ("[+]", "[x]")
    failed = 0
    for name, check in CHECKS.items():
        problems = check(root)
        failed += len(problems)
        if not problems:
            print(f"{ok} {name}: ok", file=sys.stderr)
        for problem in problems:
            print(f"{bad} {name}: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
