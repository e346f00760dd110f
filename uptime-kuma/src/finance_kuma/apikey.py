"""The API key Prometheus scrapes Kuma's /metrics with, made once and kept in a secret file.

Kuma 1.23 shows a key's clear text once, when it is made (`addAPIKey` answers
`uk<id>_<secret>`), and keeps only its hash; from the first key on, /metrics takes a key as the
basic-auth password, with any username (server/auth.js: apiAuth, verifyAPIKey). So the key is
made once and written to the file Prometheus reads (its job uptime-kuma, password_file). A later
run keeps the file's key while Kuma accepts it on /metrics; when the file is missing or Kuma no
longer accepts its key (deleted, disabled or expired in the UI, or a new Kuma data volume), a new
key is made, written, and the earlier keys of ours are deleted.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from finance_kuma.client import KumaClient, KumaError

KEY_NAME = "ai-finance-prometheus"
TIMEOUT_SECONDS = 10.0

Accepts = Callable[[str], bool]


def metrics_check(url: str) -> Accepts:
    """Whether Kuma's /metrics at `url` takes a key, as Prometheus sends it (basic auth, empty
    username): True on 200, False on 401; KumaError on anything else."""

    def accepts(key: str) -> bool:
        request = urllib.request.Request(f"{url.rstrip('/')}/metrics")
        token = base64.b64encode(f":{key}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return False
            raise KumaError(f"{url}/metrics answered {err.code} to the API key") from err
        except (urllib.error.URLError, OSError) as err:
            raise KumaError(f"{url}/metrics: {getattr(err, 'reason', err)}") from err

    return accepts


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as err:
        raise KumaError(f"cannot read {path}: {err.strerror}") from err


def _write_private(path: Path, text: str) -> None:
    """Written aside and renamed: Prometheus never reads half a key."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(partial, path)
    except OSError as err:
        raise KumaError(
            f"cannot write {path}: {err.strerror}; its folder must belong to this job's uid"
            f" ({os.getuid()}): ./start-monitoring.sh start runs secrets-init, which sees to it"
        ) from err


def ensure_api_key(client: KumaClient, path: Path, accepts: Accepts) -> str:
    """Keep the key in `path` if Kuma accepts it, else make one: "kept", "created" or
    "replaced" (a key was in the file, but Kuma no longer takes it)."""
    stored = _read(path)
    if stored and accepts(stored):
        return "kept"
    made = client.add_api_key(name=KEY_NAME, expires=None, active=True)
    key, key_id = str(made["key"]), int(made["keyID"])
    _write_private(path, key)
    for old in client.get_api_keys():
        if old.get("name") == KEY_NAME and int(old["id"]) != key_id:
            client.delete_api_key(int(old["id"]))
    if not accepts(key):
        raise KumaError(f"Uptime Kuma refuses on /metrics the API key it just made (id {key_id})")
    return "replaced" if stored else "created"
