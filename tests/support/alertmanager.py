"""The repository's alertmanager.yml on a real Alertmanager on loopback, at the pinned version
(tests/run.sh builds it: tests/live/images/pinned-go.sh), its receivers pointed at a recorder;
and amtool's routing test of the repository's config."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finance_stack.secrets import write_alerting_secrets
from support.repo import ROOT
from support.servers import free_port, stop_process
from support.stack import ALERT_SINK_URL

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
START_TIMEOUT_SECONDS = 15.0
# The test copy's timings: a group's first notification after 2s, the next after 2s; the wait
# leaves the inhibitor time to see its source alerts even on a loaded machine.
GROUP_WAIT = "2s"
GROUP_INTERVAL = "2s"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    """The pinned amtool with `args`."""
    binary = shutil.which("amtool")
    if binary is None:
        pytest.fail("amtool not found: tests/run.sh builds it (pinned-go.sh)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def route_test(labels: dict[str, str], receivers: list[str]) -> subprocess.CompletedProcess[str]:
    """`amtool config routes test --verify.receivers=...` of an alert with `labels` against the
    repository's alertmanager.yml: exit 0 when it reaches exactly `receivers`, in that order."""
    return amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{name}={value}" for name, value in labels.items()),
    )


# The alert-sink's SMTP address in alertmanager.yml (global.smtp_smarthost).
SMTP_SMARTHOST = "alert-sink:2525"


def config_copy(
    tmp_path: Path,
    sink_url: str,
    smtp: str | None = None,
    edit: Callable[[str], str] | None = None,
) -> Path:
    """A copy of alertmanager/ whose receivers point at `sink_url` (and mail at `smtp`,
    host:port).

    Only timing and addresses differ from the repository's config: group_wait and
    group_interval are shortened (GROUP_WAIT, GROUP_INTERVAL) so a test takes seconds, the
    secret files live in tmp_path, and the alert-sink's address is the recorder's. `edit` may
    change the text further (a test's own time interval).
    """
    folder = tmp_path / "alertmanager"
    shutil.copytree(ROOT / "alertmanager", folder)
    secrets = tmp_path / "secrets"
    write_alerting_secrets(secrets, chown=False, alert_sink=sink_url)
    config = folder / "alertmanager.yml"
    text = config.read_text()
    text = text.replace("/run/secrets/alerting/", f"{secrets}/")
    text = text.replace(ALERT_SINK_URL, sink_url)
    if smtp is not None:
        assert SMTP_SMARTHOST in text
        text = text.replace(SMTP_SMARTHOST, smtp)
    if edit is not None:
        text = edit(text)
    text = re.sub(r"group_wait: [1-9]\d*[smh]", f"group_wait: {GROUP_WAIT}", text)
    text = re.sub(r"group_interval: \d+m", f"group_interval: {GROUP_INTERVAL}", text)
    assert "/run/secrets/alerting/" not in text and ALERT_SINK_URL not in text
    config.write_text(text)
    return config


@contextmanager
def running_alertmanager(
    tmp_path: Path,
    sink_url: str,
    smtp: str | None = None,
    edit: Callable[[str], str] | None = None,
) -> Iterator[str]:
    """The pinned Alertmanager with the test copy of the config; its URL. Stopped by pid."""
    binary = shutil.which("alertmanager")
    if binary is None:
        pytest.fail("alertmanager not found: tests/live/images/pinned-go.sh alertmanager builds it")
    config = config_copy(tmp_path, sink_url, smtp, edit)
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        stop_process(process, timeout_seconds=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # poll every 0.1s, at most START_TIMEOUT_SECONDS
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"alertmanager did not become ready:\n{log.read_text()[-3000:]}")


def create_silence(url: str, alertname: str, hours: float = 2.0) -> str:
    """A silence of `alertname` for `hours` through Alertmanager's API; its id."""
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=hours)).isoformat(),
        "createdBy": "tests",
        "comment": f"silence of {alertname}",
    }
    request = urllib.request.Request(
        f"{url}/api/v2/silences", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        silence_id: str = json.loads(response.read())["silenceID"]
    return silence_id
