"""The local alert receiver: what it records and lists, over HTTP and over SMTP (a real client,
smtplib, against the real server), and `python3 -m finance_stack alert-sink` as the image runs it
(standard library only, JSON log lines, stops on SIGTERM)."""

from __future__ import annotations

import http.client
import json
import signal
import smtplib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from finance_stack.alert_sink import MAX_BODY_BYTES, AlertSinkServer, main, receiver_of
from finance_stack.smtp_sink import MAX_MESSAGE_BYTES
from support.servers import free_port, serving_alert_sink, serving_smtp_sink
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


# ---- the SMTP side ------------------------------------------------------------------------------

HELLO = "alertmanager.test"
SENDER = "alertmanager@finance.test"
ONCALL = ["oncall@finance.test", "sre@finance.test"]

# A message as Alertmanager 0.28 writes it (notify/email/email.go): Q-encoded header values, a
# doubled space before the boundary, quoted-printable text and HTML parts with soft line breaks.
ALERTMANAGER_MESSAGE = (
    b"Subject: =?utf-8?q?[FIRING:1]_PaymentDown_=E2=80=94_payment?=\r\n"
    b"To: oncall@finance.test, sre@finance.test\r\n"
    b"From: alertmanager@finance.test\r\n"
    b"Message-Id: <1700000000.42@alertmanager>\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Content-Type: multipart/alternative;  boundary=0f1e2d3c\r\n"
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    b"--0f1e2d3c\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"\r\n"
    b"Payment =E2=80=94 down for 5m; runbook: https://runbooks.finance.test/Paymen=\r\n"
    b"tDown?a=3Db\r\n"
    b"\r\n"
    b"--0f1e2d3c\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Type: text/html; charset=UTF-8\r\n"
    b"\r\n"
    b'<p class=3D"alert">Payment =E2=80=94 down</p>\r\n'
    b"--0f1e2d3c--\r\n"
)


def _emails(sink: AlertSinkServer) -> list[dict[str, Any]]:
    """The recorded emails' bodies, through the HTTP side's JSON as a client reads them."""
    base = f"http://127.0.0.1:{sink.server_address[1]}"
    status, listed = _request(f"{base}/notifications?receiver=email")
    assert status == 200
    entries = json.loads(listed)
    assert {(e["kind"], e["path"]) for e in entries} <= {("email", "/email")}
    return [e["body"] for e in entries]


@contextmanager
def _smtp_sink(
    max_message_bytes: int = MAX_MESSAGE_BYTES, idle_timeout_seconds: float = 10.0
) -> Iterator[tuple[AlertSinkServer, int]]:
    """The HTTP side and an SMTP side recording into it: (http server, smtp port)."""
    with (
        serving_alert_sink() as sink,
        serving_smtp_sink(sink.log, max_message_bytes, idle_timeout_seconds) as smtp,
    ):
        yield sink, smtp.server_address[1]


def _client(port: int) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, local_hostname=HELLO, timeout=5)


def test_a_plain_email_is_recorded_with_its_envelope_headers_and_text() -> None:
    message = EmailMessage()
    message["Subject"] = "Disk almost full"
    message["From"] = f"Alertmanager <{SENDER}>"
    message["To"] = ", ".join(ONCALL)
    message.set_content("node-1: 95% used\nsee the runbook\n")
    with _smtp_sink() as (sink, port), _client(port) as client:
        assert client.send_message(message) == {}
        client.quit()
        emails = _emails(sink)
    assert emails == [
        {
            "helo": HELLO,
            "mail_from": SENDER,
            "rcpt_to": ONCALL,
            "headers": {
                "Subject": "Disk almost full",
                "From": f"Alertmanager <{SENDER}>",
                "To": "oncall@finance.test, sre@finance.test",
                "Date": None,
            },
            "text": "node-1: 95% used\nsee the runbook\n",
            "html": None,
            "size_bytes": len(message.as_bytes(policy=policy.SMTP)),
        }
    ]


def test_an_alertmanager_multipart_email_is_recorded_decoded() -> None:
    with _smtp_sink() as (sink, port), _client(port) as client:
        client.ehlo(HELLO)
        # As Go's net/smtp sends it when 8BITMIME is advertised.
        assert client.mail(SENDER, ["BODY=8BITMIME"])[0] == 250
        assert [client.rcpt(address)[0] for address in ONCALL] == [250, 250]
        assert client.data(ALERTMANAGER_MESSAGE)[0] == 250
        client.quit()
        emails = _emails(sink)
    assert emails == [
        {
            "helo": HELLO,
            "mail_from": SENDER,
            "rcpt_to": ONCALL,
            "headers": {
                "Subject": "[FIRING:1] PaymentDown — payment",
                "From": SENDER,
                "To": "oncall@finance.test, sre@finance.test",
                "Date": "Tue, 14 Nov 2023 22:13:20 +0000",
            },
            "text": "Payment — down for 5m; runbook: https://runbooks.finance.test/PaymentDown?a=b\n",
            "html": '<p class="alert">Payment — down</p>',
            "size_bytes": len(ALERTMANAGER_MESSAGE),
        }
    ]


def test_data_is_dot_unstuffed_once_and_a_lone_dot_ends_it() -> None:
    with _smtp_sink() as (sink, port), _client(port) as client:
        client.ehlo(HELLO)
        client.mail(SENDER)
        client.rcpt(ONCALL[0])
        assert client.docmd("DATA")[0] == 354
        # Stuffed by hand, as a client must: each leading dot doubled.
        client.send(b"Subject: dots\r\n\r\n..one\r\n...two\r\nthree.\r\n.\r\n")
        assert client.getreply()[0] == 250
        client.quit()
        emails = _emails(sink)
    assert [(e["headers"]["Subject"], e["text"]) for e in emails] == [
        ("dots", ".one\n..two\nthree.\n")
    ]


def test_a_message_over_the_size_limit_is_refused_with_552_and_not_recorded() -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n"
    with _smtp_sink(max_message_bytes=1000) as (sink, port), _client(port) as client:
        # A client that declares the size (SIZE is advertised) is refused at MAIL ...
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ONCALL, big)
        assert refused.value.smtp_code == 552
        # ... one that does not, after its DATA; the session stays usable.
        client.rset()
        client.mail(SENDER)
        client.rcpt(ONCALL[0])
        assert client.data(big)[0] == 552
        assert client.sendmail(SENDER, ONCALL[:1], b"Subject: small\r\n\r\nok\r\n") == {}
        client.quit()
        emails = _emails(sink)
    assert [e["headers"]["Subject"] for e in emails] == ["small"]


def test_a_client_that_disconnects_in_data_records_nothing() -> None:
    with _smtp_sink() as (sink, port):
        client = _client(port)
        client.ehlo(HELLO)
        client.mail(SENDER)
        client.rcpt(ONCALL[0])
        assert client.docmd("DATA")[0] == 354
        client.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
        client.close()
        with _client(port) as after:
            after.sendmail(SENDER, ONCALL[:1], b"Subject: whole\r\n\r\nok\r\n")
            after.quit()
        emails = _emails(sink)
    assert [e["headers"]["Subject"] for e in emails] == ["whole"]


def test_commands_out_of_order_get_503() -> None:
    with _smtp_sink() as (sink, port), _client(port) as client:
        before_hello = client.docmd("MAIL", f"FROM:<{SENDER}>")[0]
        client.ehlo(HELLO)
        replies = [
            client.docmd("RCPT", f"TO:<{ONCALL[0]}>")[0],
            client.docmd("DATA")[0],
            client.docmd("MAIL", f"FROM:<{SENDER}>")[0],
            client.docmd("MAIL", f"FROM:<{SENDER}>")[0],
            client.docmd("DATA")[0],
        ]
        client.quit()
        emails = _emails(sink)
    assert before_hello == 503
    assert replies == [503, 503, 250, 503, 503]
    assert emails == []


def test_rset_clears_the_transaction() -> None:
    with _smtp_sink() as (sink, port), _client(port) as client:
        client.ehlo(HELLO)
        client.mail("first@finance.test")
        client.rcpt(ONCALL[0])
        assert client.rset()[0] == 250
        after_reset = client.docmd("DATA")[0]
        client.mail(SENDER)
        client.rcpt(ONCALL[1])
        assert client.data(b"Subject: after reset\r\n\r\nok\r\n")[0] == 250
        client.quit()
        emails = _emails(sink)
    assert after_reset == 503
    assert [(e["mail_from"], e["rcpt_to"]) for e in emails] == [(SENDER, [ONCALL[1]])]


def test_two_concurrent_clients_are_both_recorded() -> None:
    with _smtp_sink() as (sink, port), _client(port) as first, _client(port) as second:
        # Interleaved: the second completes a whole transaction inside the first's.
        first.ehlo(HELLO)
        first.mail("first@finance.test")
        second.ehlo(HELLO)
        second.mail("second@finance.test")
        second.rcpt(ONCALL[1])
        assert second.data(b"Subject: second\r\n\r\n2\r\n")[0] == 250
        first.rcpt(ONCALL[0])
        assert first.data(b"Subject: first\r\n\r\n1\r\n")[0] == 250
        first.quit()
        second.quit()
        emails = _emails(sink)
    assert [(e["mail_from"], e["rcpt_to"], e["text"]) for e in emails] == [
        ("second@finance.test", [ONCALL[1]], "2\n"),
        ("first@finance.test", [ONCALL[0]], "1\n"),
    ]


def test_ehlo_advertises_only_what_is_implemented_and_other_commands_answer() -> None:
    with _smtp_sink(max_message_bytes=4096) as (_, port), _client(port) as client:
        code, greeting = client.ehlo(HELLO)
        replies = {
            "HELO": client.helo(HELLO)[0],
            "NOOP": client.noop()[0],
            "VRFY": client.docmd("VRFY", ONCALL[0])[0],
            "STARTTLS": client.docmd("STARTTLS")[0],
            "AUTH": client.docmd("AUTH", "PLAIN")[0],
            "XYZZY": client.docmd("XYZZY")[0],
            "long": client.docmd("NOOP", "x" * 600)[0],
            "MAIL param": client.docmd("MAIL", f"FROM:<{SENDER}> SMTPUTF8")[0],
            "MAIL syntax": client.docmd("MAIL", SENDER)[0],
            "QUIT": client.docmd("QUIT")[0],
        }
    assert code == 250
    assert greeting.decode().splitlines()[1:] == ["8BITMIME", "SIZE 4096"]
    assert replies == {
        "HELO": 250,
        "NOOP": 250,
        "VRFY": 252,
        "STARTTLS": 502,
        "AUTH": 502,
        "XYZZY": 500,
        "long": 500,
        "MAIL param": 555,
        "MAIL syntax": 501,
        "QUIT": 221,
    }


def test_an_idle_client_is_told_421_and_disconnected() -> None:
    with _smtp_sink(idle_timeout_seconds=0.2) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            reader = conn.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            assert reader.readline().startswith(b"421 ")
            assert reader.readline() == b""


def test_a_bad_smtp_listen_address_is_a_usage_error() -> None:
    assert main(["--listen", "127.0.0.1:0", "--smtp-listen", "nowhere"]) == 2


def test_the_command_records_email_and_logs_the_envelope_not_the_message() -> None:
    http_port, smtp_port = free_port(), free_port()
    process = subprocess.Popen(
        stdlib_python(
            "-m",
            "finance_stack",
            "alert-sink",
            "--listen",
            f"127.0.0.1:{http_port}",
            "--smtp-listen",
            f"127.0.0.1:{smtp_port}",
        ),
        env=stdlib_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # poll every 0.05s, at most START_TIMEOUT_SECONDS
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                client = _client(smtp_port)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.05)
        with client:
            client.sendmail(SENDER, ONCALL, b"Subject: token s3cr3t\r\n\r\nkey s3cr3t\r\n")
            client.quit()
        listed = _request(f"http://127.0.0.1:{http_port}/notifications?kind=email")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert [e["body"]["text"] for e in json.loads(listed[1])] == ["key s3cr3t\n"]
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert [line["message"] for line in lines] == [
        "alert-sink listening",
        "alert-sink smtp listening",
        "email received",
    ]
    assert lines[1]["server.port"] == smtp_port
    assert (lines[2]["email.from.address"], lines[2]["email.to.address"]) == (SENDER, ONCALL)
    assert "s3cr3t" not in stderr
