"""filebeat/filebeat.yml and docker-compose.yml's filebeat service, offline (Filebeat cannot run
here: no registry, no package). The keys are Filebeat 8.18's (docs/logs.md, Shipping, names the
pages and sources they were read from). What Filebeat would do with them is worked out from those
sources where it matters: how the docker autodiscover provider nests container labels for its
template conditions (libbeat/autodiscover/providers/docker: generateMetaDocker, safemapstr.Put),
which files the input's glob takes from a json-file log directory, and where the events go."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from finance_stack import validate
from monitoring.logs.evaluation import lookup
from support.compose_vars import defaults
from support.repo import ROOT, copy_repo

CONFIG = ROOT / "filebeat" / "filebeat.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCS = ROOT / "docs" / "logs.md"
PIPELINE = ROOT / "logstash" / "pipeline"
# Beats' environment references: ${NAME}, ${NAME:default}.
BEATS_ENV = re.compile(r"\$\{(\w+)(?::([^}?][^}]*))?\}")
# The labels Compose v2 puts on every container it creates (docker inspect of a stack container).
COMPOSE_LABELS = {
    "com.docker.compose.config-hash": "0f1e",
    "com.docker.compose.container-number": "1",
    "com.docker.compose.depends_on": "",
    "com.docker.compose.image": "sha256:abc",
    "com.docker.compose.oneoff": "False",
    "com.docker.compose.project.config_files": "/srv/ai-finance/docker-compose.yml",
    "com.docker.compose.project.working_dir": "/srv/ai-finance",
    "com.docker.compose.version": "2.40.3",
}
CONTAINER_ID = "4f2a" * 16
COMPOSE_CONFIG = ("docker", "compose", "--project-directory", str(ROOT), "--profile", "*")
COMPOSE_CONFIG += ("config", "--format", "json")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def render(environ: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as Compose renders it with `environ`, every profile included."""
    if shutil.which("docker") is None:
        pytest.skip("docker compose (v2) is not installed")
    result = subprocess.run(
        [*COMPOSE_CONFIG],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != "COMPOSE_PROJECT_NAME"}, **environ},
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return render({})


@pytest.fixture(scope="module")
def service(rendered: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = rendered["services"]["filebeat"]
    return found


def template(config: dict[str, Any]) -> dict[str, Any]:
    (provider,) = config["filebeat.autodiscover"]["providers"]
    assert provider["type"] == "docker"
    (found,) = provider["templates"]
    return dict(found)


def beats_env(value: str, environ: dict[str, str]) -> str:
    """`value` as Beats expands it: the variable when set, else its default."""
    return BEATS_ENV.sub(lambda m: environ.get(m.group(1), m.group(2) or ""), value)


def nested_labels(labels: dict[str, str]) -> dict[str, Any]:
    """safemapstr.Put of every label, as the docker provider builds the labels its template
    conditions see: split at the dots, and a value whose key is also a prefix of another label
    kept under `value` (com.docker.compose.project beside ….project.config_files)."""
    root: dict[str, Any] = {}
    for key, value in labels.items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else {"value": child}
                node[part] = child
            node = child
        if isinstance(node.get(leaf), dict):
            node[leaf]["value"] = value
        else:
            node[leaf] = value
    return root


def matches(condition: dict[str, Any], event: dict[str, Any], environ: dict[str, str]) -> bool:
    """Beats' `or` and `equals` conditions (the two the template uses) on a provider event;
    `equals` on a field that is not a string (a nested object) is false, as in Beats."""
    ((kind, argument),) = condition.items()
    if kind == "or":
        return any(matches(item, event, environ) for item in argument)
    assert kind == "equals", kind
    return all(
        lookup(event, field) == beats_env(str(expected), environ)
        for field, expected in argument.items()
    )


def provider_event(labels: dict[str, str]) -> dict[str, Any]:
    return {"docker": {"container": {"id": CONTAINER_ID, "labels": nested_labels(labels)}}}


def project_name_default() -> str:
    return defaults(COMPOSE.read_text())["COMPOSE_PROJECT_NAME"]


def test_compose_nests_the_project_name_under_value() -> None:
    """The trap the condition's first form exists for."""
    labels = {**COMPOSE_LABELS, "com.docker.compose.project": "ai-finance"}
    project = lookup(provider_event(labels), "docker.container.labels.com.docker.compose.project")
    assert project == {
        "value": "ai-finance",
        "config_files": "/srv/ai-finance/docker-compose.yml",
        "working_dir": "/srv/ai-finance",
    }


@pytest.mark.parametrize(
    ("labels", "environ", "shipped"),
    [
        ({"com.docker.compose.project": "ai-finance", **COMPOSE_LABELS}, {}, True),
        ({"com.docker.compose.project": "ai-finance"}, {}, True),
        ({"com.docker.compose.project": "aif-test", **COMPOSE_LABELS}, {}, False),
        (
            {"com.docker.compose.project": "aif-test", **COMPOSE_LABELS},
            {"COMPOSE_PROJECT_NAME": "aif-test"},
            True,
        ),
        (
            {"com.docker.compose.project": "ai-finance", **COMPOSE_LABELS},
            {"COMPOSE_PROJECT_NAME": "aif-test"},
            False,
        ),
        ({"maintainer": "someone"}, {}, False),
    ],
    ids=[
        "own-project",
        "name-label-only",
        "other-project",
        "renamed",
        "renamed-other",
        "no-compose",
    ],
)
def test_only_this_compose_projects_containers_are_shipped(
    config: dict[str, Any], labels: dict[str, str], environ: dict[str, str], shipped: bool
) -> None:
    condition = template(config)["condition"]
    assert matches(condition, provider_event(labels), environ) is shipped


def test_the_project_default_is_compose_s_and_compose_passes_the_name(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    expected = {f"${{COMPOSE_PROJECT_NAME:{project_name_default()}}}"}
    written = {
        str(value)
        for clause in template(config)["condition"]["or"]
        for value in clause["equals"].values()
    }
    assert written == expected
    assert service["environment"]["COMPOSE_PROJECT_NAME"] == project_name_default()


def test_one_filestream_input_per_container_with_its_own_id(config: dict[str, Any]) -> None:
    (input_,) = template(config)["config"]
    assert input_["type"] == "filestream"
    assert input_["id"] == "container-${data.docker.container.id}"
    assert input_["parsers"] == [{"container": {"stream": "all", "format": "docker"}}]
    # Removed-but-unread files are read to the end; the docs pair that with clean_removed off.
    assert input_["close.on_state_change.removed"] is False
    assert input_["clean_removed"] is False


def test_the_glob_takes_the_live_and_rotated_json_logs_only(config: dict[str, Any]) -> None:
    (input_,) = template(config)["config"]
    (pattern,) = input_["paths"]
    directory = f"/var/lib/docker/containers/{CONTAINER_ID}"
    glob = pattern.replace("${data.docker.container.id}", CONTAINER_ID)
    excluded = [re.compile(p) for p in input_["prospector.scanner.exclude_files"]]
    present = [
        f"{CONTAINER_ID}-json.log",
        f"{CONTAINER_ID}-json.log.1",
        f"{CONTAINER_ID}-json.log.2",
        f"{CONTAINER_ID}-json.log.3.gz",
        "config.v2.json",
        "hostconfig.json",
        "hostname",
        "resolv.conf",
    ]
    taken = [
        name
        for name in present
        if fnmatch.fnmatchcase(f"{directory}/{name}", glob)
        and not any(p.search(f"{directory}/{name}") for p in excluded)
    ]
    assert taken == present[:3]


def test_the_message_is_shipped_as_written_for_logstash_to_decode(config: dict[str, Any]) -> None:
    """Logstash decodes a JSON `message` from Beats (logstash/pipeline/); decoding here too
    would leave it nothing to decode, or decode it twice."""
    (input_,) = template(config)["config"]
    assert [next(iter(parser)) for parser in input_["parsers"]] == ["container"]
    processors = [next(iter(p)) for p in [*config["processors"], *input_.get("processors", [])]]
    assert "decode_json_fields" not in processors
    assert not any(key.startswith("json") for key in input_)


def test_the_compose_service_becomes_service_name_unless_the_line_says_its_own(
    config: dict[str, Any],
) -> None:
    assert config["processors"] == [
        {
            "copy_fields": {
                "fields": [
                    {
                        "from": "docker.container.labels.com_docker_compose_service",
                        "to": "service.name",
                    }
                ],
                "ignore_missing": True,
                "fail_on_error": False,
            }
        }
    ]


def logstash_beats_port() -> int:
    pipelines = "".join(p.read_text() for p in sorted(PIPELINE.glob("*.conf")))
    ports = {int(p) for p in re.findall(r"\bbeats\s*\{[^}]*?\bport\s*=>\s*(\d+)", pipelines)}
    (port,) = ports
    return port


def test_output_is_logstash_beats_input_port(
    config: dict[str, Any], service: dict[str, Any], rendered: dict[str, Any]
) -> None:
    assert [key for key in config if key.startswith("output")] == ["output.logstash"]
    targets = {
        p["target"]
        for p in rendered["services"]["logstash"]["ports"]
        if p["published"] == defaults(COMPOSE.read_text())["LOGSTASH_BEATS_PORT"]
    }
    assert targets == {logstash_beats_port()}
    assert config["output.logstash"]["hosts"] == [f"logstash:{logstash_beats_port()}"]
    assert set(service["networks"]) == set(rendered["services"]["logstash"]["networks"])


def test_root_with_nothing_else(service: dict[str, Any], rendered: dict[str, Any]) -> None:
    assert service["user"] == "0:0"
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service and "privileged" not in service
    assert service["read_only"] is True
    assert "no-new-privileges:true" in service["security_opt"]
    assert "ports" not in service
    assert service["profiles"] == rendered["services"]["logstash"]["profiles"]


def test_mounts_read_only_but_the_registry_volume(
    service: dict[str, Any], rendered: dict[str, Any]
) -> None:
    mounts = {m["target"]: m for m in service["volumes"]}
    assert set(mounts) == {
        "/usr/share/filebeat/filebeat.yml",
        "/var/lib/docker/containers",
        "/var/run/docker.sock",
        "/usr/share/filebeat/data",
    }
    for target in ("/usr/share/filebeat/filebeat.yml", "/var/lib/docker/containers"):
        assert mounts[target]["type"] == "bind" and mounts[target]["read_only"] is True, target
    assert mounts["/var/run/docker.sock"]["read_only"] is True
    assert mounts["/usr/share/filebeat/filebeat.yml"]["source"] == str(CONFIG)
    assert mounts["/var/lib/docker/containers"]["source"] == "/var/lib/docker/containers"
    assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    registry = mounts["/usr/share/filebeat/data"]
    assert registry["type"] == "volume" and not registry.get("read_only")
    assert registry["source"] == "filebeat-data"
    assert "filebeat-data" in rendered["volumes"]


def test_another_engines_root_and_socket_are_mounted_instead() -> None:
    """A separately rooted engine (the live tests' own dockerd, a rootless one)."""
    environ = {"DOCKER_ROOT_DIR": "/srv/engine", "DOCKER_SOCKET": "/run/engine/docker.sock"}
    volumes = render(environ)["services"]["filebeat"]["volumes"]
    mounts = {m["target"]: m["source"] for m in volumes}
    assert mounts["/var/lib/docker/containers"] == "/srv/engine/containers"
    assert mounts["/var/run/docker.sock"] == "/run/engine/docker.sock"


def test_strict_perms_off_because_the_config_is_not_roots(service: dict[str, Any]) -> None:
    assert service["command"] == ["-environment", "container", "--strict.perms=false"]


def test_the_healthcheck_probes_filebeats_own_endpoint_with_bash_only(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    assert config["http.enabled"] is True
    assert config["http.host"] == "127.0.0.1"
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    assert f"/dev/tcp/127.0.0.1/{config['http.port']} " in test[3]
    assert not re.search(r"\b(curl|wget|grep|python)\b", test[3]), test[3]
    assert "${status}" in test[3], "compose must leave the shell's variable to bash"


def test_the_image_follows_elastic_version() -> None:
    written = defaults(COMPOSE.read_text())
    assert (
        written["FILEBEAT_IMAGE"] == "docker.elastic.co/beats/filebeat:${ELASTIC_VERSION:-8.18.2}"
    )


def test_docs_state_the_rotation_bound_compose_sets(rendered: dict[str, Any]) -> None:
    options = rendered["services"]["demo-platform"]["logging"]["options"]
    size, files = options["max-size"], int(options["max-file"])
    shipping = DOCS.read_text().split("## Shipping", 1)[1].split("\n## ", 1)[0]
    assert f"max-size {size}" in shipping and f"max-file {files}" in shipping
    total = int(size.removesuffix("m")) * files
    assert f"{total} MB" in shipping


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def problems(root: Path) -> list[str]:
    return [str(p) for p in validate.check_filebeat(root)]


def test_validate_accepts_the_repository() -> None:
    assert validate.check_filebeat(ROOT) == []


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def hosts_line(root: Path) -> int:
    lines = (root / "filebeat" / "filebeat.yml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith("hosts:"))


def test_validate_reports_a_wrong_port_with_its_line(repo: Path) -> None:
    edit(repo, "filebeat/filebeat.yml", '"logstash:5044"', '"logstash:5045"')
    assert problems(repo) == [
        f"filebeat/filebeat.yml:{hosts_line(repo)}: output.logstash.hosts has 'logstash:5045':"
        " Logstash's Beats input is logstash:5044 (the logstash service's LOGSTASH_BEATS_PORT"
        " port in docker-compose.yml)"
    ]


def test_validate_reports_a_pipeline_on_another_port(repo: Path) -> None:
    beats = re.compile(r"\bbeats\s*\{[^}]*?\bport\s*=>\s*5044")
    conf = next(
        p
        for p in sorted((repo / "logstash" / "pipeline").glob("*.conf"))
        if beats.search(p.read_text())
    )
    text = conf.read_text()
    found = beats.search(text)
    assert found
    conf.write_text(text[: found.end() - 4] + "5055" + text[found.end() :])
    line = text.count("\n", 0, found.start()) + 1
    assert problems(repo) == [
        f"logstash/pipeline/{conf.name}:{line}: beats input on port 5055, docker-compose.yml"
        " publishes LOGSTASH_BEATS_PORT from 5044, where Filebeat sends"
    ]


def test_validate_reports_an_output_other_than_logstash(repo: Path) -> None:
    edit(
        repo,
        "filebeat/filebeat.yml",
        "output.logstash:",
        'output.elasticsearch:\n  hosts: ["elasticsearch:9200"]\noutput.logstash:',
    )
    assert problems(repo) == [
        "filebeat/filebeat.yml: output.elasticsearch, output.logstash: ship to Logstash only"
        " (output.logstash)"
    ]


def test_validate_reports_a_missing_project_filter(repo: Path) -> None:
    path = repo / "filebeat" / "filebeat.yml"
    text = re.sub(r"com\.docker\.compose\.project(\.value)?", "maintainer", path.read_text())
    path.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("filebeat."))
    assert problems(repo) == [
        f"filebeat/filebeat.yml:{line}: no docker autodiscover template limited to this compose"
        " project (a condition on docker.container.labels.com.docker.compose.project)"
    ]


def test_validate_reports_a_config_others_can_write(repo: Path) -> None:
    (repo / "filebeat" / "filebeat.yml").chmod(0o664)
    assert problems(repo) == [
        "filebeat/filebeat.yml: writable by group or others (mode 0664): Filebeat runs it as"
        " root; chmod go-w filebeat/filebeat.yml"
    ]


def test_validate_reports_invalid_yaml_with_its_line(repo: Path) -> None:
    edit(repo, "filebeat/filebeat.yml", "http.port: 5066", "http.port: [5066")
    (found,) = problems(repo)
    assert found.startswith("filebeat/filebeat.yml:") and "invalid YAML" in found


def test_validate_reports_a_logstash_without_the_beats_port(repo: Path) -> None:
    edit(
        repo,
        "docker-compose.yml",
        "      - ${BIND_ADDRESS:-127.0.0.1}:${LOGSTASH_BEATS_PORT:-5044}:5044\n",
        "",
    )
    assert problems(repo) == [
        "docker-compose.yml: logstash publishes no LOGSTASH_BEATS_PORT port: Filebeat cannot be"
        " checked"
    ]
