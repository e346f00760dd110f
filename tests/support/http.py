"""JSON over HTTP with basic auth, for the live tests that talk to a service's API."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any


def json_call(url: str, user: str, password: str, body: object = None, timeout: float = 30) -> Any:
    """GET `url` (or POST `body` as JSON) as `user`; the decoded JSON reply. An HTTP error status
    raises urllib.error.HTTPError, which carries the reply."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
