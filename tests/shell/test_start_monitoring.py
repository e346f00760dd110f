"""start-monitoring.sh without a stack: help, usage errors, dry runs, lint, and a missing engine."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finance_stack import pins
from finance_stack.envfile import Settings
from support.archives import make_archive
from support.repo import ROOT, copy_repo
from support.servers import free_port

SCRIPT = ROOT / "start-monitoring.sh"
COMMANDS = (
    "start",
    "stop",
    "restart",
    "status",
    "health",
    "logs",
    "validate",
    "drill",
    "backup",
    "restore",
    "upgrade",
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: install Debian's shellcheck"
    scripts = [
        SCRIPT,
        ROOT / "tests/run.sh",
        ROOT / "elasticsearch/setup/setup.sh",
        ROOT / "elasticsearch/setup/lib.sh",
        ROOT / "kibana/setup.sh",
        ROOT / "tests/live/docker-engine.sh",
        ROOT / "tests/live/images/build.sh",
        ROOT / "tests/live/images/pinned-go.sh",
    ]
    result = subprocess.run(
        [shellcheck, "-x", "--enable=all", "--exclude=SC2310,SC2311,SC2312", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_help_lists_every_command_and_exits_0() -> None:
    result = run("help")
    assert result.returncode == 0 and result.stderr == ""
    for command in COMMANDS:
        assert f"\n  {command}" in result.stdout
    assert "Exit status: 0 success, 1 failure, 2 usage error." in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: ./start-monitoring.sh {command}")


def test_unknown_command_is_a_usage_error_on_stderr() -> None:
    result = run("launch")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.rstrip().endswith("[x] unknown command: launch")


def test_start_with_arguments_is_a_usage_error() -> None:
    result = run("start", "now")
    assert result.returncode == 2
    assert "start takes no arguments" in result.stderr


def test_start_without_a_docker_engine_fails_fast_saying_what_to_do() -> None:
    result = run("start", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 1
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in result.stderr
    assert "start it" in result.stderr


def test_start_without_docker_installed_says_how_to_get_it(tmp_path: os.PathLike[str]) -> None:
    # A PATH with bash and the basic tools but no docker.
    bin_dir = os.path.join(tmp_path, "bin")
    os.mkdir(bin_dir)
    for tool in ("bash", "dirname", "cat", "mkdir", "flock"):
        found = shutil.which(tool)
        assert found
        os.symlink(found, os.path.join(bin_dir, tool))
    # The interpreter itself, not a version manager's shim that needs more tools on PATH.
    os.symlink(os.path.realpath(sys.executable), os.path.join(bin_dir, "python3"))
    result = run("start", env={"PATH": bin_dir})
    assert result.returncode == 1
    assert "docker not found: install Docker Engine" in result.stderr


def test_dry_run_shows_the_compose_command() -> None:
    docker = shutil.which("docker")
    assert docker, "docker CLI not found"
    result = run(
        "logs",
        "prometheus",
        env={
            "DRY_RUN": "1",
            "DOCKER_HOST": os.environ.get(
                "DOCKER_HOST", "unix:///run/ai-finance-docker/docker.sock"
            ),
        },
    )
    if result.returncode != 0 and "cannot reach the Docker engine" in result.stderr:
        pytest.fail("the Docker engine for the live tests is not running")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "arg=docker",
        "arg=compose",
        "arg=--project-directory",
        f"arg={ROOT}",
        "arg=--file",
        f"arg={ROOT}/docker-compose.yml",
        "arg=--profile",
        "arg=*",
        "arg=logs",
        "arg=--tail",
        "arg=200",
        "arg=prometheus",
    ]


# Variables of the caller's environment that would change what the script decides.
STEERING = ("COMPOSE_PROFILES", "OTLP_ENDPOINT", "DATABASE_URL", "REDIS_URL", "DRY_RUN")


def engine_env(**extra: str) -> dict[str, str]:
    """The live tests' engine (started by tests/run.sh), and nothing that steers the script."""
    env = {k: v for k, v in os.environ.items() if k not in STEERING}
    env["DOCKER_HOST"] = os.environ.get("DOCKER_HOST", "unix:///run/ai-finance-docker/docker.sock")
    return {**env, **extra}


def run_in(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "start-monitoring.sh"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def require_engine(result: subprocess.CompletedProcess[str]) -> None:
    if any(
        text in result.stderr
        for text in ("cannot reach the Docker engine", "Cannot connect to the Docker daemon")
    ):
        pytest.fail("the Docker engine for the live tests is not running (tests/run.sh starts it)")


def test_help_for_an_unknown_command_is_a_usage_error() -> None:
    result = run("help", "nonsense")
    assert result.returncode == 2
    assert result.stderr.rstrip().endswith("[x] help: unknown command: nonsense")


def test_an_unknown_option_is_a_usage_error() -> None:
    result = run("status", "--yaml")
    assert result.returncode == 2
    assert "status: unknown option: --yaml" in result.stderr


def test_drill_list_names_the_scenarios_without_a_stack() -> None:
    result = run("drill", "--list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert names[0] == "synthetic" and "payment-provider-down" in names
    listed = run("drill", "--list", "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("drill", "--yaml"), "[x] drill: unknown option: --yaml"),
        (("drill", "platform-killed", "payment-errors"), "[x] drill takes one scenario, not"),
        (("drill", "no-such-scenario"), "[x] unknown drill scenario: no-such-scenario; the"),
    ],
)
def test_drill_misuse_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_dry_run_start_prints_what_it_would_do_and_starts_nothing(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    env = engine_env(
        DRY_RUN="1", COMPOSE_PROJECT_NAME=f"aif-dry-{os.getpid()}", COMPOSE_PROFILES="demo"
    )
    for variable in ("PROMETHEUS_PORT", "ALERTMANAGER_PORT", "ALERT_SINK_PORT"):
        env[variable] = str(free_port())
    result = run_in(root, "start", env=env)
    require_engine(result)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "[+] DRY_RUN=1: nothing was started" in result.stderr
    assert "is up" not in result.stdout
    assert "arg=up" in result.stdout and "arg=secrets-init" in result.stdout
    assert not (root / "secrets").exists()
    assert list((root / "prometheus" / "targets").glob("*.json")) == []


def test_status_of_a_stopped_stack_says_so_and_exits_1(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    result = run_in(root, "status", env=engine_env(COMPOSE_PROJECT_NAME=f"aif-none-{os.getpid()}"))
    require_engine(result)
    assert result.returncode == 1, result.stderr
    assert "the stack is not running; start it with ./start-monitoring.sh start" in result.stderr


def test_a_second_start_while_one_runs_is_refused(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    (root / ".state").mkdir(mode=0o700)
    with (root / ".state" / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (root / ".state" / "lock.pid").write_text("4242\n")
        for command in ("start", "stop", "restart", "upgrade"):
            result = run_in(root, command, env=engine_env())
            assert result.returncode == 1, result.stderr
            assert (
                "another start, stop or restart of this stack is running (pid 4242)"
                in result.stderr
            )


def test_a_bad_port_in_env_file_fails_start_naming_the_line(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    (root / ".env").write_text("COMPOSE_PROFILES=demo\nPROMETHEUS_PORT=99999\n")
    result = run_in(root, "start", env=engine_env())
    require_engine(result)
    assert result.returncode == 1
    assert ".env:2: PROMETHEUS_PORT=99999 is out of range (1 to 65535)" in result.stderr
    assert not (root / "secrets").exists()


def test_the_script_has_no_embedded_program_and_stays_short() -> None:
    text = SCRIPT.read_text()
    assert len(text.splitlines()) < 500
    assert "python3 -c" not in text and "<<'PY'" not in text and "import " not in text


def test_restore_refuses_a_truncated_archive_before_it_needs_the_engine(tmp_path: Path) -> None:
    facts = pins.read(ROOT, Settings(ROOT))
    path = make_archive(tmp_path, pins=facts.pins)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = run("restore", str(path), "--yes")
    assert result.returncode == 1, result.stderr
    assert result.stderr.endswith(
        "[x] restore failed: truncated or damaged archive: it ends inside"
        " prometheus/wal/00000001 (unexpected end of data)\n"
    )


def test_backup_restore_and_upgrade_misuse_is_a_usage_error() -> None:
    assert run("backup", "--bogus").returncode == 2
    assert run("upgrade", "--bogus").returncode == 2
    result = run("restore")
    assert result.returncode == 2
    assert "the following arguments are required: archive" in result.stderr


def test_upgrade_of_a_stack_that_is_not_running_backs_up_nothing_and_starts_nothing(
    tmp_path: Path,
) -> None:
    root = copy_repo(tmp_path / "repo")
    env = engine_env(COMPOSE_PROJECT_NAME=f"aif-none-{os.getpid()}")
    result = run_in(root, "upgrade", env=env)
    require_engine(result)
    assert result.returncode == 1, result.stderr
    assert "[x] upgrade: the stack is not running, so there is nothing to back up" in (
        result.stderr
    )
    assert result.stderr.rstrip().endswith(
        "[x] upgrade stopped before changing anything: see above"
    )
    assert result.stdout == ""
    assert not (root / "backups").exists() and not (root / "secrets").exists()
