"""Check every config of the stack offline (start-monitoring.sh validate, and `start` first).

Each problem is printed as `[x] FILE[:LINE]: PROBLEM`; the exit status is 1 if any was found.
The real tools decide where they exist (docker compose config, promtool, amtool): from PATH, or
else from the pinned Prometheus and Alertmanager images when the engine has them (no network,
the config mounted read-only). The rest is parsed here: `.env`, YAML and JSON with their line
numbers, Grafana uids, Logstash pipeline structure. PyYAML is the one library it uses.
"""

from __future__ import annotations

import argparse
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
    """pipelines.yml names existing files; each pipeline has balanced braces and known sections."""
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
    return problems


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


CHECKS = {
    ".env": check_env,
    "compose": check_compose,
    "prometheus (promtool)": check_prometheus,
    "alertmanager (amtool)": check_alertmanager,
    "scale-out override": check_scale,
    "grafana": check_grafana,
    "logstash": check_logstash,
    "elasticsearch, kibana": check_elastic,
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
