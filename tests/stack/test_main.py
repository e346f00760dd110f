"""`python3 -m finance_stack`: the dispatch, and that the whole package runs on the standard
library alone (the stack image installs no packages)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess

import pytest

import finance_stack
from finance_stack.__main__ import COMMANDS, main
from support.repo import ROOT
from support.stack import STACK_SRC, stdlib_env, stdlib_python

PACKAGE = STACK_SRC / "finance_stack"

# Imports every module of the package, then names each loaded module that comes from neither the
# standard library nor stack/src (a site-packages one would be, e.g. psycopg, redis or yaml).
_FOREIGN_MODULES = """
import json, pkgutil, sys, sysconfig
from pathlib import Path
import finance_stack
names = sorted(m.name for m in pkgutil.walk_packages(finance_stack.__path__, "finance_stack."))
for name in names:
    __import__(name)
allowed = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")]
allowed.append(Path(sys.argv[1]).resolve())
foreign = sorted(
    name
    for name, module in sys.modules.items()
    if getattr(module, "__file__", None)
    and not any(Path(module.__file__).resolve().is_relative_to(p) for p in allowed)
)
print(json.dumps({"imported": names, "foreign": foreign}))
"""


def test_every_module_imports_with_the_standard_library_alone() -> None:
    result = subprocess.run(
        [*stdlib_python("-c", _FOREIGN_MODULES), str(STACK_SRC)],
        env=stdlib_env(),
        cwd=STACK_SRC,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {"finance_stack.secrets", "finance_stack.alert_sink"} <= set(found["imported"])
    assert found["foreign"] == []


def test_without_site_packages_a_third_party_import_fails() -> None:
    """The check above can fail: the interpreter it runs really has no site-packages."""
    result = subprocess.run(
        stdlib_python("-c", "import yaml"),
        env=stdlib_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "No module named 'yaml'" in result.stderr


def test_every_command_is_a_function_of_the_package() -> None:
    modules = {m.name for m in pkgutil.iter_modules(finance_stack.__path__, "finance_stack.")}
    for command, target in COMMANDS.items():
        module, _, function = target.partition(":")
        assert module in modules, command
        assert callable(getattr(importlib.import_module(module), function or "main")), command


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.split("commands:\n")[1].splitlines()
        if line.startswith("  ")
    ]
    assert listed == list(COMMANDS)


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nonsense"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("finance_stack: unknown command: nonsense\n")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_the_module_dispatches_to_the_command_and_returns_its_status() -> None:
    result = subprocess.run(
        stdlib_python("-m", "finance_stack", "secrets"),
        env=stdlib_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "usage: finance_stack secrets" in result.stderr


def test_no_port_number_is_typed_in_the_package() -> None:
    """Ports come from the compose file through the reader: no number that is one of the
    stack's ports (published or in a label) appears in the package's code."""
    compose = (ROOT / "docker-compose.yml").read_text()
    stack_ports = {
        *re.findall(r":-(\d{2,5})\}:\d", compose),  # published defaults: ${X_PORT:-9090}:9090
        *re.findall(r"\}:(\d{2,5})$", compose, flags=re.M),  # container ports
        # host:port in URLs, addresses and commands (a host has a letter, or is 0.0.0.0/127.0.0.1)
        *re.findall(r"(?:[a-z][a-z0-9-]*|0\.0\.0\.0|127\.0\.0\.1):(\d{2,5})\b", compose),
        # the ports in the stack's own labels: ai-finance.health: "http 9090 /-/healthy"
        *re.findall(r"\b(\d{2,5})\b", " ".join(re.findall(r"ai-finance\.[a-z.]+: (.*)", compose))),
    }
    assert {"9090", "9095", "16686", "4318", "5432", "6379", "9187"} <= stack_ports
    assert "10001" not in stack_ports  # a uid, not a port
    found = {
        (path.name, number)
        for path in PACKAGE.glob("*.py")
        for number in re.findall(r"\b(\d{4,5})\b", path.read_text())
        if number in stack_ports
    }
    assert found == set()
