"""The alert-sink's SMTP listener: the RFC 5321 subset a mail client needs to hand over a message.

Alertmanager's email notifier (notify/email/email.go) sends EHLO with its `hello` name, tries
STARTTLS only if it is advertised (with `require_tls: true` it gives up when it is not) and AUTH
only if it is advertised and a username is set, then MAIL, one RCPT per address and DATA. This
server advertises only 8BITMIME and SIZE, so the notifier must run with `require_tls: false`, and
it sends no credentials here. Every accepted message goes to `deliver`; a transaction that ends
in any other way (a refusal, a timeout, a client that hangs up) delivers nothing.

Hand-written on socketserver because `smtpd` and `asyncore` are gone from Python 3.12: one thread
per connection, as the HTTP side of the sink does.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
from collections.abc import Callable, Mapping
from typing import ClassVar

from finance_stack.mail import Envelope, Mail, parse_mail

logger = logging.getLogger(__name__)

# As the HTTP side's MAX_BODY_BYTES: far above what Alertmanager's templates render.
MAX_MESSAGE_BYTES = 1024 * 1024
# RFC 5321 4.5.3.1: a server must accept 100 recipients, 512-octet command lines (CRLF included)
# and 1000-octet text lines; longer DATA lines are read in pieces of that size, never refused.
MAX_RECIPIENTS = 100
COMMAND_LINE_BYTES = 512
TEXT_LINE_BYTES = 1000
# RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for the next command.
IDLE_TIMEOUT_SECONDS = 300.0
LISTEN_BACKLOG = 128

_PATH = re.compile(r"^(?P<keyword>FROM|TO):\s*<(?P<address>[^<>]*)>(?P<params>.*)$", re.I)
_BODY_TYPES = {"7BIT", "8BITMIME"}
# Commands RFC 5321 or its extensions define that this server does not implement: 502, not 500.
_NOT_IMPLEMENTED = {"AUTH", "BDAT", "ETRN", "EXPN", "HELP", "STARTTLS", "TURN"}

Deliver = Callable[[Mail], object]


class _ClientGoneError(Exception):
    """The client closed the connection."""


class _Handler(socketserver.StreamRequestHandler):
    """One SMTP session: a greeting, then one reply per command line until QUIT."""

    server: SmtpSinkServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout_seconds)
        self._client_name: str | None = None
        self._mail_from: str | None = None
        self._rcpt_to: list[str] = []
        self._done = False

    def handle(self) -> None:
        host = self.server.hostname
        try:
            self._reply(220, f"{host} ESMTP finance alert-sink")
            while not self._done:
                self._command(self._read_command())
        except TimeoutError:
            logger.debug("smtp idle timeout", extra={"fields": self._client_fields()})
            try:
                self._reply(421, f"{host} idle timeout, closing connection")
            except OSError:
                pass
        except (_ClientGoneError, OSError):
            logger.debug("smtp client gone", extra={"fields": self._client_fields()})

    def _command(self, line: str | None) -> None:
        if line is None:
            self._reply(500, "line too long")
            return
        verb, _, argument = line.partition(" ")
        verb, argument = verb.upper(), argument.strip()
        handler = self._COMMANDS.get(verb)
        if handler is not None:
            handler(self, argument)
        elif verb in _NOT_IMPLEMENTED:
            self._reply(502, f"{verb} not implemented")
        else:
            self._reply(500, "command not recognized")

    def _ehlo(self, domain: str) -> None:
        if not domain:
            self._reply(501, "EHLO needs a domain")
            return
        self._client_name = domain
        self._reset()
        size = self.server.max_message_bytes
        self._reply(250, f"{self.server.hostname} greets {domain}", "8BITMIME", f"SIZE {size}")

    def _helo(self, domain: str) -> None:
        if not domain:
            self._reply(501, "HELO needs a domain")
            return
        self._client_name = domain
        self._reset()
        self._reply(250, self.server.hostname)

    def _mail(self, argument: str) -> None:
        if self._client_name is None:
            self._reply(503, "send HELO or EHLO first")
            return
        if self._mail_from is not None:
            self._reply(503, "nested MAIL command")
            return
        path = _PATH.match(argument)
        if path is None or path["keyword"].upper() != "FROM":
            self._reply(501, "syntax: MAIL FROM:<address>")
            return
        for name, value in _parameters(path["params"]):
            if name == "SIZE" and value.isdigit():
                if int(value) > self.server.max_message_bytes:
                    self._reply(552, "message size exceeds fixed maximum message size")
                    return
            elif not (name == "BODY" and value.upper() in _BODY_TYPES):
                self._reply(555, f"MAIL FROM parameter not recognized: {name}")
                return
        self._mail_from = _address(path["address"])
        self._reply(250, "OK")

    def _rcpt(self, argument: str) -> None:
        if self._mail_from is None:
            self._reply(503, "need MAIL before RCPT")
            return
        path = _PATH.match(argument)
        if path is None or path["keyword"].upper() != "TO" or not _address(path["address"]):
            self._reply(501, "syntax: RCPT TO:<address>")
            return
        if path["params"].strip():
            self._reply(555, "RCPT TO parameters not recognized")
            return
        if len(self._rcpt_to) >= MAX_RECIPIENTS:
            self._reply(452, "too many recipients")
            return
        self._rcpt_to.append(_address(path["address"]))
        self._reply(250, "OK")

    def _data(self, argument: str) -> None:
        if self._mail_from is None or not self._rcpt_to:
            self._reply(503, "need MAIL and RCPT before DATA")
            return
        if argument:
            self._reply(501, "DATA takes no argument")
            return
        envelope = Envelope(self._client_name or "", self._mail_from, tuple(self._rcpt_to))
        self._reply(354, "end data with <CR><LF>.<CR><LF>")
        raw = self._read_data()
        self._reset()  # the transaction is over, whatever the outcome
        fields = {"email.from.address": envelope.mail_from, "email.to.address": envelope.rcpt_to}
        if raw is None:
            logger.warning("email refused", extra={"fields": {**fields, "reason": "size"}})
            self._reply(552, "message exceeds fixed maximum message size")
            return
        self.server.deliver(parse_mail(envelope, raw))
        # Envelope only: the subject and body may carry whatever the alert's annotations hold.
        logger.info("email received", extra={"fields": {**fields, "size_bytes": len(raw)}})
        self._reply(250, "OK: message accepted")

    def _rset(self, argument: str) -> None:
        if argument:
            self._reply(501, "RSET takes no argument")
            return
        self._reset()
        self._reply(250, "OK")

    def _noop(self, argument: str) -> None:
        self._reply(250, "OK")

    def _vrfy(self, argument: str) -> None:
        if not argument:
            self._reply(501, "VRFY needs an address")
            return
        self._reply(252, "cannot VRFY user, but will accept message and attempt delivery")

    def _quit(self, argument: str) -> None:
        self._reply(221, f"{self.server.hostname} closing connection")
        self._done = True

    _COMMANDS: ClassVar[Mapping[str, Callable[[_Handler, str], None]]] = {
        "EHLO": _ehlo,
        "HELO": _helo,
        "MAIL": _mail,
        "RCPT": _rcpt,
        "DATA": _data,
        "RSET": _rset,
        "NOOP": _noop,
        "VRFY": _vrfy,
        "QUIT": _quit,
    }

    def _reset(self) -> None:
        self._mail_from = None
        self._rcpt_to = []

    def _read_command(self) -> str | None:
        """The next command line without its line ending; None if it was too long (discarded)."""
        line = self.rfile.readline(COMMAND_LINE_BYTES + 1)
        if not line:
            raise _ClientGoneError
        too_long = len(line) > COMMAND_LINE_BYTES
        while not line.endswith(b"\n"):  # the rest of an overlong line
            line = self.rfile.readline(COMMAND_LINE_BYTES)
            if not line:
                raise _ClientGoneError
            too_long = True
        return None if too_long else line.rstrip(b"\r\n").decode("utf-8", errors="replace")

    def _read_data(self) -> bytes | None:
        """The message up to the line ".", dot-unstuffed; None if it is over the size limit (the
        rest is read and dropped, so the session stays in step)."""
        limit = self.server.max_message_bytes
        chunks: list[bytes] = []
        size = 0
        # Only CRLF ends a line: a bare LF never starts the terminator (no SMTP smuggling).
        at_line_start = True
        while True:
            chunk = self.rfile.readline(TEXT_LINE_BYTES)
            if not chunk:
                raise _ClientGoneError
            if at_line_start and chunk == b".\r\n":
                return None if size > limit else b"".join(chunks)
            if at_line_start and chunk.startswith(b"."):
                chunk = chunk[1:]
            at_line_start = chunk.endswith(b"\r\n")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()

    def _reply(self, code: int, *lines: str) -> None:
        text = "".join(
            f"{code}{'-' if number < len(lines) - 1 else ' '}{line}\r\n"
            for number, line in enumerate(lines)
        )
        self.wfile.write(text.encode("utf-8", errors="replace"))

    def _client_fields(self) -> dict[str, object]:
        host, port = self.client_address[:2]
        return {"client.address": str(host), "client.port": port}


def _parameters(text: str) -> list[tuple[str, str]]:
    """MAIL/RCPT parameters (`SIZE=123 BODY=8BITMIME`) -> [(name upper-cased, value)]."""
    return [
        (name.upper(), value) for name, _, value in (item.partition("=") for item in text.split())
    ]


def _address(path: str) -> str:
    """The mailbox of a path, without an obsolete source route (`<@a,@b:user@c>` -> user@c)."""
    return path.rpartition(":")[2] if path.startswith("@") else path


class SmtpSinkServer(socketserver.ThreadingTCPServer):
    """A threaded SMTP server that hands every accepted message to `deliver`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        deliver: Deliver,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(address, _Handler)
        self.deliver = deliver
        self.max_message_bytes = max_message_bytes
        self.idle_timeout_seconds = idle_timeout_seconds
        self.hostname = socket.gethostname()
