"""A fake Uptime Kuma 1.23.16 behind the real uptime-kuma-api client, for the provisioner's tests.

Kuma cannot run here (no image can be pulled and there is no package of it), so this is the one
fake of the repository. Only the Socket.IO transport is replaced: FakeKumaApi is the library's
UptimeKumaApi with `connect` and `_call` answered by FakeKuma, so the library's own code builds,
checks and converts every call (an argument Kuma 1.23 does not know fails here as it would
there). FakeKuma answers each socket event the way louislam/uptime-kuma 1.23.16 does
(server/server.js: needSetup, setup, login, add, getMonitor, editMonitor, deleteMonitor, getTags,
addTag, addMonitorTag; server/socket-handlers/api-key-socket-handler.js: addAPIKey,
deleteAPIKey): ids assigned in order, needSetup true until setup, Kuma's own messages, and the
monitorList / apiKeyList events pushed after login and after each change. It records every
event it is sent. /metrics is a real HTTP server on loopback that authorizes as server/auth.js
does (a user's password until the first API key exists, then only an active, unexpired key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from uptime_kuma_api import Event, UptimeKumaApi, UptimeKumaException

from support.json_api import serving

VERSION = "1.23.16"
# Events that change Kuma's state.
WRITES = frozenset(
    {"setup", "add", "editMonitor", "deleteMonitor", "addTag", "addMonitorTag", "addAPIKey"}
    | {"deleteAPIKey"}
)
# The fields the editMonitor handler copies from the client's monitor onto the stored one
# (server/server.js, 1.23.16; the ones the provisioner can set, and the others it sends back).
EDITED = (
    "name description parent type url method body headers timeout interval retryInterval"
    " resendInterval hostname maxretries port keyword invertKeyword ignoreTls expiryNotification"
    " upsideDown packetSize maxredirects accepted_statuscodes httpBodyEncoding authMethod"
).split()


def _wire(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeKuma:
    """Kuma's state, and its answer to each socket event."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}  # username -> password hash
        self.monitors: dict[int, dict[str, Any]] = {}
        self.tags: dict[int, dict[str, Any]] = {}
        self.monitor_tags: list[dict[str, Any]] = []
        self.api_keys: dict[int, dict[str, Any]] = {}
        self.api_keys_enabled = False
        self.calls: list[tuple[str, Any]] = []
        self.unreachable_attempts = 0
        self._ids = {"monitor": 0, "tag": 0, "api_key": 0, "monitor_tag": 0}

    def _next(self, table: str) -> int:
        self._ids[table] += 1
        return self._ids[table]

    def writes(self) -> list[str]:
        """The state-changing events received, in order."""
        return [event for event, _ in self.calls if event in WRITES]

    def monitor_json(self, monitor_id: int) -> dict[str, Any]:
        """A monitor as Monitor.toJSON sends it: its columns, its tags, its notifications."""
        tags = [dict(t) for t in self.monitor_tags if t["monitor_id"] == monitor_id]
        for tag in tags:
            tag.update(
                name=self.tags[tag["tag_id"]]["name"], color=self.tags[tag["tag_id"]]["color"]
            )
        return {**self.monitors[monitor_id], "tags": tags, "notificationIDList": {}}

    def key_accepted(self, key: str) -> bool:
        """verifyAPIKey: uk<id>_<clear>, the id's row active and unexpired, the hash matching."""
        index, _, clear = key.removeprefix("uk").partition("_")
        row = self.api_keys.get(int(index)) if index.isdigit() else None
        return row is not None and bool(row["active"]) and row["key"] == _hash(clear)

    def password_accepted(self, username: str, password: str) -> bool:
        """server/auth.js `login`."""
        return self.users.get(username) == _hash(password)

    # ---- the socket handlers ---------------------------------------------------------------

    def handle(self, session: FakeKumaApi, event: str, data: Any) -> Any:
        """Kuma's callback for `event`, both ways through JSON as on the wire (an enum arrives
        as its value, a tuple of arguments as a list)."""
        data = _wire(data)
        self.calls.append((event, data))
        handler = getattr(self, "on_" + event, None)
        if handler is None:
            raise AssertionError(f"the fake has no handler for socket event {event!r}")
        if event not in {"needSetup", "setup", "login"} and session.user_id is None:
            return {"ok": False, "msg": "You are not logged in."}  # checkLogin
        return _wire(handler(session, data))

    def on_needSetup(self, session: FakeKumaApi, data: Any) -> bool:
        return not self.users

    def on_setup(self, session: FakeKumaApi, data: list[str]) -> dict[str, Any]:
        username, password = data
        if self.users:
            return {
                "ok": False,
                "msg": "Uptime Kuma has been initialized. If you want to run setup again,"
                " please delete the database.",
            }
        self.users[username] = _hash(password)
        return {"ok": True, "msg": "Added Successfully."}

    def on_login(self, session: FakeKumaApi, data: dict[str, str]) -> dict[str, Any]:
        if not self.password_accepted(data["username"], data["password"]):
            return {"ok": False, "msg": "Incorrect username or password."}
        session.user_id = 1
        session.push(Event.MONITOR_LIST, self._monitor_list())  # afterLogin
        session.push(Event.INFO, {"version": VERSION, "latestVersion": VERSION})
        session.push(Event.API_KEY_LIST, self._api_key_list())
        return {"ok": True, "token": secrets.token_urlsafe(16)}

    def on_add(self, session: FakeKumaApi, monitor: dict[str, Any]) -> dict[str, Any]:
        if not all(isinstance(code, str) for code in monitor["accepted_statuscodes"]):
            return {"ok": False, "msg": "Accepted status codes are not all strings"}
        monitor_id = self._next("monitor")
        stored = {k: v for k, v in monitor.items() if k != "notificationIDList"}
        self.monitors[monitor_id] = {**stored, "id": monitor_id, "active": True}
        session.push(Event.MONITOR_LIST, self._monitor_list())
        return {"ok": True, "msg": "Added Successfully.", "monitorID": monitor_id}

    def on_getMonitor(self, session: FakeKumaApi, monitor_id: int) -> dict[str, Any]:
        return {"ok": True, "monitor": self.monitor_json(monitor_id)}

    def on_editMonitor(self, session: FakeKumaApi, monitor: dict[str, Any]) -> dict[str, Any]:
        stored = self.monitors[monitor["id"]]
        for key in EDITED:
            stored[key] = monitor.get(key)
        stored["port"] = int(monitor["port"]) if monitor.get("port") is not None else None
        session.push(Event.MONITOR_LIST, self._monitor_list())
        return {"ok": True, "msg": "Saved.", "monitorID": monitor["id"]}

    def on_deleteMonitor(self, session: FakeKumaApi, monitor_id: int) -> dict[str, Any]:
        self.monitors.pop(monitor_id, None)
        self.monitor_tags = [t for t in self.monitor_tags if t["monitor_id"] != monitor_id]
        session.push(Event.MONITOR_LIST, self._monitor_list())
        return {"ok": True, "msg": "Deleted Successfully."}

    def on_getTags(self, session: FakeKumaApi, data: Any) -> dict[str, Any]:
        return {"ok": True, "tags": list(self.tags.values())}

    def on_addTag(self, session: FakeKumaApi, tag: dict[str, Any]) -> dict[str, Any]:
        tag_id = self._next("tag")
        self.tags[tag_id] = {"id": tag_id, "name": tag["name"], "color": tag["color"]}
        return {"ok": True, "tag": dict(self.tags[tag_id])}

    def on_addMonitorTag(self, session: FakeKumaApi, data: list[Any]) -> dict[str, Any]:
        tag_id, monitor_id, value = data
        row = {"id": self._next("monitor_tag"), "monitor_id": monitor_id, "tag_id": tag_id}
        self.monitor_tags.append({**row, "value": value})
        return {"ok": True, "msg": "Added Successfully."}

    def on_addAPIKey(self, session: FakeKumaApi, key: dict[str, Any]) -> dict[str, Any]:
        clear = secrets.token_urlsafe(30)[:40]
        key_id = self._next("api_key")
        self.api_keys[key_id] = {**key, "id": key_id, "key": _hash(clear)}
        session.push(Event.API_KEY_LIST, self._api_key_list())
        self.api_keys_enabled = True
        return {
            "ok": True,
            "msg": "Added Successfully.",
            "key": f"uk{key_id}_{clear}",
            "keyID": key_id,
        }

    def on_deleteAPIKey(self, session: FakeKumaApi, key_id: int) -> dict[str, Any]:
        self.api_keys.pop(key_id, None)
        session.push(Event.API_KEY_LIST, self._api_key_list())
        return {"ok": True, "msg": "Deleted Successfully."}

    def _monitor_list(self) -> dict[str, dict[str, Any]]:
        return {str(i): self.monitor_json(i) for i in sorted(self.monitors)}

    def _api_key_list(self) -> list[dict[str, Any]]:
        """toPublicJSON: no key hash; active as the database's 0/1."""
        return [
            {
                "id": row["id"],
                "name": row["name"],
                "userID": 1,
                "active": 1 if row["active"] else 0,
                "expires": row["expires"],
                "status": "active" if row["active"] else "inactive",
            }
            for row in self.api_keys.values()
        ]

    # ---- made by hand in the UI ---------------------------------------------------------------

    def add_by_hand(self, name: str, url: str) -> int:
        """A monitor a person made in Kuma's UI: no tag, no marker."""
        monitor_id = self._next("monitor")
        self.monitors[monitor_id] = {
            "id": monitor_id,
            "name": name,
            "description": None,
            "type": "http",
            "url": url,
            "interval": 60,
            "retryInterval": 60,
            "maxretries": 0,
            "accepted_statuscodes": ["200-299"],
            "active": True,
        }
        return monitor_id


class FakeKumaApi(UptimeKumaApi):  # type: ignore[misc]
    """uptime-kuma-api's client, talking to a FakeKuma instead of a socket."""

    def __init__(self, kuma: FakeKuma, url: str) -> None:
        self.kuma = kuma
        self.user_id: int | None = None
        self.disconnected = False
        super().__init__(url, timeout=2, wait_events=0)

    def connect(self) -> None:
        """As the library's: UptimeKumaException("unable to connect") while Kuma is down."""
        if self.kuma.unreachable_attempts > 0:
            self.kuma.unreachable_attempts -= 1
            raise UptimeKumaException("unable to connect")

    def disconnect(self) -> None:
        self.disconnected = True

    def push(self, event: str, data: Any) -> None:
        """An event from Kuma, through the library's own handler of it."""
        handlers = {
            Event.MONITOR_LIST: self._event_monitor_list,
            Event.INFO: self._event_info,
            Event.API_KEY_LIST: self._event_api_key_list,
        }
        handlers[event](_wire(data))

    def _call(self, event: str, data: Any = None) -> Any:
        """The library's _call, with the fake's answer for the socket's."""
        answer = self.kuma.handle(self, event, data)
        if isinstance(answer, dict) and "ok" in answer:
            if not answer["ok"]:
                raise UptimeKumaException(answer.get("msg"))
            answer.pop("ok")
        return answer


class _MetricsHandler(BaseHTTPRequestHandler):
    kuma: FakeKuma

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm=""')
            self.end_headers()
            return
        lines = [
            f'monitor_status{{monitor_name="{m["name"]}",monitor_type="{m["type"]}"}} 1'
            for m in self.kuma.monitors.values()
        ]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if self.kuma.api_keys_enabled:  # apiAuth: apiAuthorizer once a key exists
            return self.kuma.key_accepted(password)
        return self.kuma.password_accepted(username, password)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def metrics_server(kuma: FakeKuma) -> Iterator[str]:
    """Kuma's /metrics for `kuma` on a free loopback port; yields its base URL."""
    handler = type("Handler", (_MetricsHandler,), {"kuma": kuma})
    with serving(handler) as url:
        yield url
