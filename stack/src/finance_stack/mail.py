"""What one accepted email becomes in the alert-sink's record: its envelope, four headers and its
text, parsed with the standard library's `email` package.

Alertmanager (notify/email/email.go) sends a `multipart/alternative` message whose text and HTML
parts are both quoted-printable UTF-8, and Q-encodes every header value it writes. The record
keeps the decoded text of each, so a test or a person reads what the template rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

# The headers a record keeps, as Alertmanager writes them (absent ones are recorded as None).
HEADERS = ("Subject", "From", "To", "Date")


@dataclass(frozen=True)
class Envelope:
    """The SMTP transaction around a message: HELO/EHLO name, MAIL FROM and every RCPT TO."""

    helo: str
    mail_from: str
    rcpt_to: tuple[str, ...]


@dataclass(frozen=True)
class Mail:
    """One accepted message: envelope, decoded headers, text and HTML bodies, size on the wire."""

    helo: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    headers: dict[str, str | None]
    text: str
    html: str | None
    size_bytes: int


def _text_of(part: MIMEPart | None) -> str | None:
    """A text part's content, decoded (transfer encoding, then charset); None if there is none."""
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or wrong charset: keep what can be read
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else None


def _header(message: EmailMessage, name: str) -> str | None:
    """A header's decoded value; as sent if the parser cannot make sense of it."""
    try:
        value = message.get(name)
    except (HeaderParseError, IndexError, ValueError):  # known to escape on some broken addresses
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def parse_mail(envelope: Envelope, raw: bytes) -> Mail:
    """The record of `raw` (the DATA of one transaction, dot-unstuffed) sent with `envelope`."""
    # One line ending throughout, so that the text reads the same whatever the client sent.
    message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessage objects
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return Mail(
        helo=envelope.helo,
        mail_from=envelope.mail_from,
        rcpt_to=envelope.rcpt_to,
        headers={name: _header(message, name) for name in HEADERS},
        text=_text_of(plain) or "",
        html=_text_of(html),
        size_bytes=len(raw),
    )
