"""health: each service of the running profiles, probed as its label says, on the reader's ports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from finance_stack.compose import Container, Port, Project, Service
from finance_stack.health import check, render


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str]]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, ""))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, tuple[int, str]]]]:
    routes: ClassVar[dict[str, tuple[int, str]]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], routes
    httpd.shutdown()
    httpd.server_close()


def service(name: str, label: str, target: int, published: int | None, **extra: object) -> Service:
    ports = (Port(target, published, "127.0.0.1", "X_PORT", "1"),) if published else ()
    return Service(
        name,
        "i",
        None,
        False,
        labels={"ai-finance.health": label},
        ports=ports,
        restart="unless-stopped",
        **extra,
    )  # type: ignore[arg-type]


def running(name: str, health: str = "") -> Container:
    return Container(id=name, service=name, state="running", health=health, exit_code=0, ports=())


def test_each_probe_uses_the_published_port_of_its_container_port(
    server: tuple[int, dict[str, tuple[int, str]]], tmp_path: Path
) -> None:
    port, routes = server
    routes["/-/healthy"] = (200, "ok")
    routes["/healthz"] = (200, "ok")
    routes["/metrics"] = (
        200,
        'finance_exporter_up{source="postgres"} 1.0\nfinance_exporter_up{source="redis"} 0.0\n',
    )
    project = Project(
        "t",
        "demo",
        {
            "prometheus": service("prometheus", "http 9090 /-/healthy", 9090, port),
            "signals-exporter": service("signals-exporter", "exporter 9102", 9102, port),
        },
    )
    results = {
        r.component: r
        for r in check(project, [running("prometheus"), running("signals-exporter")], tmp_path)
    }
    assert results["prometheus"].healthy
    assert results["prometheus"].detail == f"http://127.0.0.1:{port}/-/healthy answered 200"
    assert not results["signals-exporter"].healthy
    assert results["signals-exporter"].detail.endswith("datastore down: redis")


def test_a_service_answering_5xx_is_unhealthy(
    server: tuple[int, dict[str, tuple[int, str]]], tmp_path: Path
) -> None:
    port, routes = server
    routes["/api/health"] = (503, "database locked")
    project = Project(
        "t", "full", {"grafana": service("grafana", "http 3000 /api/health", 3000, port)}
    )
    (result,) = check(project, [running("grafana")], tmp_path)
    assert (result.healthy, result.detail) == (
        False,
        f"http://127.0.0.1:{port}/api/health answered 503",
    )


def test_unpublished_or_unlabelled_services_fall_back_to_their_container_healthcheck(
    tmp_path: Path,
) -> None:
    project = Project(
        "t",
        "demo",
        {
            "demo-platform": Service(
                "demo-platform", "i", None, True, has_healthcheck=True, restart="unless-stopped"
            ),
            "kibana": service("kibana", "http 5601 /api/status", 5601, None),
        },
    )
    results = check(
        project, [running("demo-platform", "unhealthy"), running("kibana", "healthy")], tmp_path
    )
    assert [(r.component, r.healthy, r.detail) for r in results] == [
        ("demo-platform", False, "container healthcheck: unhealthy"),
        ("kibana", True, "container healthcheck: healthy"),
    ]


def test_a_killed_service_says_start_brings_it_back(tmp_path: Path) -> None:
    project = Project(
        "t", "demo", {"prometheus": service("prometheus", "http 9090 /-/healthy", 9090, 1)}
    )
    killed = Container(
        id="p", service="prometheus", state="exited", health="", exit_code=137, ports=()
    )
    (result,) = check(project, [killed], tmp_path)
    assert not result.healthy
    assert result.detail == (
        "container exited (code 137): ./start-monitoring.sh logs prometheus,"
        " then ./start-monitoring.sh start brings it back"
    )
    (missing,) = check(project, [], tmp_path)
    assert missing.detail == "container missing: ./start-monitoring.sh start creates it"


def test_one_off_jobs_are_judged_by_their_exit_code(tmp_path: Path) -> None:
    project = Project(
        "t", "demo", {"demo-setup": Service("demo-setup", "i", None, True, restart="no")}
    )
    failed = Container(
        id="d", service="demo-setup", state="exited", health="", exit_code=1, ports=()
    )
    (result,) = check(project, [failed], tmp_path)
    assert (result.healthy, result.detail) == (False, "one-off job: exited (exit 1)")
    assert (
        render([result], as_json=False)
        == "FAIL  demo-setup             one-off job: exited (exit 1)\n"
    )


def test_the_watchdogs_last_delivery_is_the_last_increase_of_its_counter() -> None:
    from finance_stack.health import last_increase

    # Delivered at 30 and 75 (a 5-minute repeat squeezed): the last rise is the answer.
    assert last_increase([(0, 1), (15, 1), (30, 2), (45, 2), (60, 2), (75, 3), (90, 3)]) == 75
    # Alertmanager restarted: the counter fell to 1, which is one delivery after the restart.
    assert last_increase([(0, 7), (15, 7), (30, 1), (45, 1)]) == 30
    # Restarted and nothing delivered since: no delivery.
    assert last_increase([(0, 7), (15, 0), (30, 0)]) is None
    # Flat (every attempt failed: failures are subtracted) or no samples: none.
    assert last_increase([(0, 4), (15, 4), (30, 4)]) is None
    assert last_increase([]) is None
