"""The local alert receiver: what it records and lists, and `python3 -m finance_stack alert-sink`
as the image runs it (standard library only, JSON log lines, stops on SIGTERM)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

from finance_stack.alert_sink import MAX_BODY_BYTES, main, receiver_of
from support.servers import free_port, serving_alert_sink
from support.stack import stdlib_env, stdlib_python

START_TIMEOUT_SECONDS = 10.0


def _request(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_sink_records_posts_filters_by_receiver_and_keeps_the_last_ones() -> None:
    with serving_alert_sink(capacity=3) as sink:
        base = f"http://127.0.0.1:{sink.server_address[1]}"
        for number in range(4):
            path = f"{base}/slack/team{number % 2}"
            status, answer = _request(path, json.dumps({"n": number}).encode())
            assert status == 200 and json.loads(answer)["ok"] is True
        assert _request(f"{base}/pagerduty", b"not json")[0] == 200
        status, listed = _request(f"{base}/notifications")
        only = json.loads(_request(f"{base}/notifications?receiver=team1")[1])
        health = _request(f"{base}/healthz")
        missing = _request(f"{base}/elsewhere")
    assert status == 200
    assert [(e["path"], e["receiver"], e["body"]) for e in json.loads(listed)] == [
        ("/slack/team0", "team0", {"n": 2}),
        ("/slack/team1", "team1", {"n": 3}),
        ("/pagerduty", "pagerduty", "not json"),
    ]
    assert [e["body"] for e in only] == [{"n": 3}]
    assert health == (200, b"ok\n")
    assert missing[0] == 404


def test_a_body_over_the_limit_is_refused_and_not_recorded() -> None:
    with serving_alert_sink() as sink:
        base = f"http://127.0.0.1:{sink.server_address[1]}"
        # It answers from the header alone, before the body: announce one and send none.
        connection = http.client.HTTPConnection("127.0.0.1", sink.server_address[1], timeout=5)
        connection.putrequest("POST", "/slack/sre")
        connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
        connection.close()
        assert json.loads(_request(f"{base}/notifications")[1]) == []


def test_the_receiver_is_the_last_path_segment() -> None:
    assert [receiver_of(p) for p in ("/slack/sre", "/pagerduty", "/webhook/drill/", "/")] == [
        "sre",
        "pagerduty",
        "drill",
        "",
    ]


def test_a_listen_address_without_a_port_is_a_usage_error() -> None:
    assert main(["--listen", "localhost"]) == 2


def test_the_command_serves_logs_json_lines_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        stdlib_python("-m", "finance_stack", "alert-sink", "--listen", f"127.0.0.1:{port}"),
        env=stdlib_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        # poll every 0.05s, at most START_TIMEOUT_SECONDS
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                assert _request(f"{base}/healthz") == (200, b"ok\n")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.05)
        assert _request(f"{base}/watchdog", b"{}")[0] == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert [(line["message"], line["log.level"]) for line in lines] == [
        ("alert-sink listening", "info"),
        ("notification received", "info"),
    ]
    assert (lines[0]["server.address"], lines[0]["server.port"]) == ("127.0.0.1", port)
    assert lines[1]["url.path"] == "/watchdog"
    assert lines[0]["log.logger"] == "finance_stack.alert_sink"
