"""The real command: serves /metrics and /healthz, logs ECS JSON without secrets, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from collections import Counter
from pathlib import Path

from finance_exporter.domains import DOMAINS
from support.datastores import Database, RedisDb
from support.exposition import fetch, parse
from support.servers import free_port


def test_exporter_process_serves_logs_json_and_stops_on_sigterm(
    database: Database, redis_db: RedisDb, tmp_path: Path
) -> None:
    port = free_port()
    secret_file = tmp_path / "database_url"
    secret_file.write_text(database.exporter_url)
    env = {
        **os.environ,
        "DATABASE_URL_FILE": str(secret_file),
        "REDIS_URL": redis_db.exporter_url,
        "EXPORTER_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "finance_exporter", "portfolio", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert fetch(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "exporter did not start listening"
                time.sleep(0.1)
        status, body = fetch(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        up = parse(body)["finance_exporter_up"]
        assert up == {(("source", "postgres"),): 1.0, (("source", "redis"),): 1.0}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    events = [json.loads(line) for line in stderr.splitlines()]
    messages = [e["message"] for e in events]
    # The first folds run on their own thread and connection (backfill.py): their events
    # interleave with the server's, one start and one end per incremental query.
    folds = sum(q.incremental for q in DOMAINS["portfolio"])
    assert Counter(messages) == {
        "listening": 1,
        "postgres connected": 2,
        "backfill started": folds,
        "backfill done": folds,
        "stopping": 1,
    }
    # A fold still running at SIGTERM may end after "stopping": the exporter waits for it.
    assert messages.index("stopping") > messages.index("listening")
    assert "backfill started" not in messages[messages.index("stopping") :]
    for event in events:
        assert set(event) >= {"@timestamp", "log.level", "service.name", "message"}
        assert event["service.name"] == "finance-exporter-portfolio"
    password = database.exporter_url.split(":")[2].split("@")[0]
    redis_password = redis_db.exporter_url.split(":")[2].split("@")[0]
    assert password not in stderr and redis_password not in stderr
    [listening] = [e for e in events if e["message"] == "listening"]
    assert listening["postgres"].count("***") == 1
    assert (tmp_path / "checkpoints" / "portfolio.json").exists()
