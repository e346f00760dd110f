"""status: a line per container, JSON for scripts, and a clear word when nothing runs."""

from __future__ import annotations

import json

from finance_stack.compose import Container
from finance_stack.status import empty_message, render


def test_lines_and_json_list_every_container() -> None:
    containers = [Container("a", "prometheus", "running", "healthy", 0, ("127.0.0.1:9090",))]
    text, code = render(containers, as_json=False)
    assert (text.split(), code) == (["prometheus", "running", "healthy", "127.0.0.1:9090"], 0)
    rows, code = render(containers, as_json=True)
    assert json.loads(rows) == [
        {
            "service": "prometheus",
            "state": "running",
            "health": "healthy",
            "ports": ["127.0.0.1:9090"],
        }
    ]


def test_a_stopped_stack_is_exit_1_with_what_to_do() -> None:
    assert render([], as_json=False) == ("", 1)
    assert render([], as_json=True) == ("[]\n", 1)
    assert empty_message("ai-finance") == (
        "no containers of project ai-finance: the stack is not running;"
        " start it with ./start-monitoring.sh start"
    )
