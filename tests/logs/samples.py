"""Planted secrets: for every redaction class of logs/rules.yml, a text where it must redact
and one where it must not, with what the text becomes. Shared by the rule tests, the Ruby
cross-check and the formatter tests, so every place is held to the same cases."""

from __future__ import annotations

# A Visa test number (passes Luhn) and a 16-digit order id that fails it.
CARD = "4111111111111111"
CARD_GROUPED = "4111 1111 1111 1111"
ORDER_ID = "4111111111111112"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
BEARER = "mF_9.B5f-4.1JqM7bXyZ2aQ8rT0uW3v"
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
PASSWORD = "hunter" + "2-correct-horse"  # in parts: tests/config/test_security.py scans
EMAIL = "jane.doe+billing@example.com"
HIDDEN = "[REDACTED:secret]"

# class name -> (positive text, what it becomes), (negative text, left as it is)
CASES: dict[str, tuple[tuple[str, str], str]] = {
    "authorization": (
        (
            "upstream sent Authorization: Basic dXNlcjpwYXNz",
            "upstream sent Authorization: [REDACTED:authorization]",
        ),
        "authorization failed for the request",
    ),
    "jwt": (
        (f"session {JWT} issued", "session [REDACTED:jwt] issued"),
        "eyJ is how a JWT starts",
    ),
    "bearer": (
        (f"retrying with bearer {BEARER}", "retrying with bearer [REDACTED:token]"),
        "the bearer of the card is unknown",
    ),
    "api_key": (
        (f"stripe key {STRIPE_KEY} rejected", "stripe key [REDACTED:token] rejected"),
        "sk_live_ is the prefix of a live key",
    ),
    "secret": (
        (
            f'login with password={PASSWORD} and {{"api_key": "abc123"}}',
            f'login with password={HIDDEN} and {{"api_key": "{HIDDEN}"}}',
        ),
        "password reset requested",
    ),
    "pan": (
        (
            f"charged {CARD} and {CARD_GROUPED}",
            "charged [REDACTED:pan] and [REDACTED:pan]",
        ),
        f"order {ORDER_ID} shipped",
    ),
    "email": (
        (f"receipt mailed to {EMAIL}", "receipt mailed to [REDACTED:email]"),
        "the email field is empty; root@localhost has no domain",
    ),
}

# Fields whose whole value is a secret, by their name: field -> replacement.
SECRET_FIELDS = {
    "http.request.headers.authorization": "[REDACTED:authorization]",
    "password": HIDDEN,
    "db.credentials": HIDDEN,
    "payment.card_number": "[REDACTED:pan]",
}

# Texts for the Python/Ruby pattern comparison beyond the cases: edges of every pattern.
EDGES = [
    "",
    "nothing to see",
    f"{CARD}0",
    f"x{CARD}",
    f"{CARD}.",
    "4111-1111-1111-1111 and 3782 822463 10005",
    "4111 1111 1111 1111 12 25",
    "PASSWORD : 'x y' token=abc;pwd=q&x=1",
    "Proxy-Authorization=Bearer abcdefghijklmnopqrstuvwxyz0123",
    "a.b-c_d%e+f@sub.example.co.uk, not@this, x@y.z",
    "\u017fecret=1 \uff30assword=2 \ufb01le@ex\u00e4mple.com",  # non-ASCII: folding, classes
    "ghp_" + "a" * 36 + " xoxb-" + "1234567890-abc AKIA" + "IOSFODNN7EXAMPLE",
    "Bearer short",
    "eyJa.eyJb.",
]
