"""The kuma-setup job (uptime-kuma/src/finance_kuma) against a fake Uptime Kuma 1.23.16.

No real Kuma can run here (DESIGN.md section 8), so these run the real command and the real
uptime-kuma-api client against tests/support/fake_kuma.py, which answers Kuma's socket events as
1.23.16 does and serves /metrics on loopback; tests/live/test_uptime_fullstack.py runs the same
against the real image where it can be pulled.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from finance_kuma import cli
from finance_kuma.apikey import KEY_NAME, metrics_check
from finance_kuma.provision import MARKER, TAG_NAME, TAG_VALUE
from support.clock import FakeClock
from support.fake_kuma import WRITES, FakeKuma, FakeKumaApi, metrics_server
from support.repo import ROOT

MONITORS = ROOT / "uptime-kuma" / "monitors.yml"
# A fresh admin password each run, as secrets-init makes one.
PASSWORD = secrets.token_urlsafe(24)


@dataclass
class Job:
    """One Kuma, the job's files, and a way to run the job against them."""

    kuma: FakeKuma
    url: str
    folder: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def key_file(self) -> Path:
        return self.folder / "uptime-kuma" / "api_key"

    @property
    def password_file(self) -> Path:
        return self.folder / "kuma_admin_password"

    @property
    def monitors_file(self) -> Path:
        return self.folder / "monitors.yml"

    def run(self, *args: str, profiles: str = "*") -> tuple[int, str, str]:
        """The job's exit status, stdout and stderr."""
        self.monkeypatch.setenv(cli.PROFILES_VARIABLE, profiles)
        self.capsys.readouterr()
        code = cli.main(
            [
                *("--url", self.url, "--monitors", str(self.monitors_file)),
                *("--password-file", str(self.password_file), "--key-file", str(self.key_file)),
                *args,
            ],
            make=lambda url: FakeKumaApi(self.kuma, url),
            clock=FakeClock(),
        )
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def report(self, profiles: str = "*") -> dict[str, Any]:
        code, out, err = self.run("--json", profiles=profiles)
        assert code == 0, err
        found: dict[str, Any] = json.loads(out)
        return found

    def edit_monitors(self, edit: Any) -> None:
        document = yaml.safe_load(self.monitors_file.read_text())
        document["monitors"] = edit(document["monitors"])
        self.monitors_file.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
def job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Job]:
    kuma = FakeKuma()
    (tmp_path / "uptime-kuma").mkdir(mode=0o700)
    (tmp_path / "kuma_admin_password").write_text(PASSWORD + "\n")
    (tmp_path / "monitors.yml").write_text(MONITORS.read_text())
    with metrics_server(kuma) as url:
        yield Job(kuma, url, tmp_path, capsys, monkeypatch)


def file_monitors() -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in yaml.safe_load(MONITORS.read_text())["monitors"]}


def kuma_monitors(kuma: FakeKuma) -> dict[str, dict[str, Any]]:
    return {m["name"]: kuma.monitor_json(i) for i, m in kuma.monitors.items()}


def test_the_first_run_creates_the_admin_every_monitor_tagged_and_the_key(job: Job) -> None:
    report = job.report()
    wanted = file_monitors()
    assert report["admin"] == "created" and job.kuma.password_accepted("admin", PASSWORD)
    assert report["created"] == sorted(wanted) and report["api_key"] == "created"
    made = kuma_monitors(job.kuma)
    assert set(made) == set(wanted)
    for name, monitor in made.items():
        fields = {k: v for k, v in wanted[name].items() if k not in ("service", "profiles")}
        fields["description"] = f"{MARKER} {fields['description']}"
        assert {k: monitor[k] for k in fields} == fields, name
        assert [(t["name"], t["value"]) for t in monitor["tags"]] == [(TAG_NAME, TAG_VALUE)]
    key = job.key_file.read_text().strip()
    assert key.startswith("uk1_") and metrics_check(job.url)(key)
    assert job.key_file.stat().st_mode & 0o777 == 0o600


def test_the_second_run_changes_nothing_and_makes_no_secret_again(job: Job) -> None:
    job.report()
    key = job.key_file.read_text()
    before = len(job.kuma.calls)
    report = job.report()
    second = [event for event, _ in job.kuma.calls[before:]]
    assert second and [event for event in second if event in WRITES] == []
    assert (report["admin"], report["api_key"]) == ("existing", "kept")
    assert (report["created"], report["changed"], report["removed"]) == ([], {}, [])
    assert report["unchanged"] == sorted(file_monitors())
    assert job.key_file.read_text() == key and list(job.kuma.api_keys) == [1]


def test_a_monitor_dropped_from_the_file_is_removed_from_kuma(job: Job) -> None:
    job.report()
    gone = next(i for i, m in job.kuma.monitors.items() if m["name"] == "prometheus")
    job.edit_monitors(lambda monitors: [m for m in monitors if m["name"] != "prometheus"])
    before = len(job.kuma.calls)
    report = job.report()
    assert report["removed"] == ["prometheus"] and report["created"] == []
    assert [c for c in job.kuma.calls[before:] if c[0] == "deleteMonitor"] == [
        ("deleteMonitor", gone)
    ]
    assert "prometheus" not in kuma_monitors(job.kuma)


def test_a_changed_monitor_is_edited_in_place(job: Job) -> None:
    job.report()
    job.edit_monitors(
        lambda monitors: [
            {**m, "interval": 120} if m["name"] == "alertmanager" else m for m in monitors
        ]
    )
    before = len(job.kuma.calls)
    report = job.report()
    assert report["changed"] == {"alertmanager": ["interval"]}
    assert [c[0] for c in job.kuma.calls[before:] if c[0] in WRITES] == ["editMonitor"]
    assert kuma_monitors(job.kuma)["alertmanager"]["interval"] == 120


def test_a_monitor_made_by_hand_is_left_alone_and_listed(job: Job) -> None:
    mine = job.kuma.add_by_hand("company-website", "https://www.example.com/")
    before = dict(job.kuma.monitors[mine])
    job.report()
    job.edit_monitors(lambda monitors: monitors[1:])  # a managed one goes: the hand-made stays
    report = job.report()
    assert report["unmanaged"] == ["company-website"] and len(report["removed"]) == 1
    assert job.kuma.monitors[mine] == before
    assert ("deleteMonitor", mine) not in job.kuma.calls


def test_a_monitor_made_but_not_tagged_by_a_stopped_run_is_adopted(job: Job) -> None:
    job.report()
    adopted = next(i for i, m in job.kuma.monitors.items() if m["name"] == "node-exporter")
    job.kuma.monitor_tags = [t for t in job.kuma.monitor_tags if t["monitor_id"] != adopted]
    before = len(job.kuma.calls)
    report = job.report()
    assert report["changed"] == {"node-exporter": ["tags"]} and report["created"] == []
    assert [c[0] for c in job.kuma.calls[before:] if c[0] in WRITES] == ["addMonitorTag"]


def test_only_the_monitors_of_running_profiles_are_applied(job: Job) -> None:
    wanted = file_monitors()
    always = sorted(n for n, m in wanted.items() if not m["profiles"])
    demo = sorted(n for n, m in wanted.items() if "demo" in m["profiles"])
    first = job.report(profiles="demo")
    assert first["created"] == sorted(always + demo)
    assert first["inactive"] == sorted(set(wanted) - set(always) - set(demo))
    # The demo stops: its services' monitors go, so none reports a service that is not running.
    second = job.report(profiles="uptime")
    assert second["removed"] == demo and set(kuma_monitors(job.kuma)) == set(always)


def test_a_key_kuma_no_longer_accepts_is_replaced_and_the_old_one_deleted(job: Job) -> None:
    job.report()
    old = job.key_file.read_text().strip()
    job.kuma.api_keys[1]["active"] = False  # disabled in Kuma's UI
    report = job.report()
    new = job.key_file.read_text().strip()
    assert report["api_key"] == "replaced" and new.startswith("uk2_")
    assert list(job.kuma.api_keys) == [2] and ("deleteAPIKey", 1) in job.kuma.calls
    check = metrics_check(job.url)
    assert check(new) and not check(old)


def test_a_missing_key_file_gets_a_new_key(job: Job) -> None:
    job.report()
    job.key_file.unlink()
    report = job.report()
    assert report["api_key"] == "created" and metrics_check(job.url)(
        job.key_file.read_text().strip()
    )
    assert [row["name"] for row in job.kuma.api_keys.values()] == [KEY_NAME]


def test_a_refused_login_names_the_password_file_and_what_to_do(job: Job) -> None:
    job.report()
    job.password_file.write_text(secrets.token_urlsafe(24) + "\n")
    before = len(job.kuma.calls)
    code, out, err = job.run()
    assert code == 1 and out == ""
    assert err.startswith(
        "[x] kuma-setup: Uptime Kuma refused the login of user admin ('Incorrect username or"
        f" password.') with the password in {job.password_file}:"
    )
    assert "npm run reset-password" in err and "docker compose run --rm kuma-setup" in err
    assert [event for event, _ in job.kuma.calls[before:]] == ["needSetup", "login"]


def test_an_unreachable_kuma_is_waited_for_with_progress(job: Job) -> None:
    job.kuma.unreachable_attempts = 2
    code, _, err = job.run("--wait-seconds", "30")
    waits = [line for line in err.splitlines() if "waiting for Uptime Kuma" in line]
    assert code == 0 and len(waits) == 2
    assert waits[0] == f"[+] waiting for Uptime Kuma at {job.url} (0s of 30s): unable to connect"


def test_a_kuma_that_never_answers_fails_at_the_deadline(job: Job) -> None:
    job.kuma.unreachable_attempts = 1000
    code, _, err = job.run("--wait-seconds", "10")
    assert code == 1
    assert err.count("waiting for Uptime Kuma") == 3  # at 0, 3 and 6 seconds; 9 + 3 > 10
    assert err.splitlines()[-1].startswith(
        f"[x] kuma-setup: Uptime Kuma at {job.url} did not answer within 10s (unable to"
        " connect): is it running and healthy?"
    )
    assert job.kuma.calls == []


def test_no_notifier_is_made_and_the_report_reads_for_people(job: Job) -> None:
    code, out, err = job.run()
    assert code == 0 and out == ""
    events = {event for event, _ in job.kuma.calls}
    assert events <= {"needSetup", "setup", "login", "getTags", "addTag", "add"} | {
        "addMonitorTag",
        "getMonitor",
        "addAPIKey",
    }
    lines = err.splitlines()
    count = len(file_monitors())
    assert lines[0] == (
        f"[+] Uptime Kuma at {job.url}: admin account created (its password: {job.password_file})"
    )
    assert lines[1].startswith(f"[+] monitors: {count} created, 0 changed, 0 removed")
    assert lines[-1] == f"[+] API key for Prometheus: created ({job.key_file})"
