"""`python3 -m finance_stack`: the standard library alone, a usage error for an unknown step."""

from __future__ import annotations

import subprocess
import sys

import pytest

from finance_stack.__main__ import COMMANDS, main
from support.repo import ROOT

PACKAGE = ROOT / "stack" / "src" / "finance_stack"


def isolated(*args: str) -> subprocess.CompletedProcess[str]:
    """The interpreter without site-packages (-I -S): only the standard library and stack/src."""
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); " + args[0],
            str(ROOT / "stack" / "src"),
            *args[1:],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "validate")
)
def test_every_module_imports_with_the_standard_library_alone(module: str) -> None:
    result = isolated(f"import finance_stack.{module}")
    assert result.returncode == 0, result.stderr


def test_validate_imports_without_pyyaml_and_says_what_is_missing() -> None:
    result = isolated("import finance_stack.validate as v; print(v.yaml)")
    assert (result.returncode, result.stdout.strip()) == (0, "None")


def test_no_port_number_is_typed_in_the_package() -> None:
    # Ports come from the compose file through the reader: no 4- or 5-digit literal that is a
    # port of the stack may appear in the package's code.
    compose = (ROOT / "docker-compose.yml").read_text()
    import re

    stack_ports = set(re.findall(r":(\d{4,5})(?:\}|\"|$)", compose, flags=re.M)) | set(
        re.findall(r"\b(\d{4,5})\b", " ".join(re.findall(r"ai-finance\.[a-z.]+: (.*)", compose)))
    )
    assert "9090" in stack_ports and "16686" in stack_ports
    found = {
        (path.name, number)
        for path in PACKAGE.glob("*.py")
        for number in re.findall(r"\b(\d{4,5})\b", path.read_text())
        if number in stack_ports
    }
    assert found == set()


def test_an_unknown_step_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch"]) == 2
    assert "unknown command 'launch'" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert set(COMMANDS) >= {"settings", "preflight", "validate", "wait", "health", "drill"}
