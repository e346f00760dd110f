"""What a run did, for people (`[+]` lines) and for scripts (one JSON object)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from finance_kuma.provision import MonitorChanges


@dataclass(frozen=True)
class Report:
    """One run of the provisioner."""

    url: str
    admin_created: bool
    monitors: MonitorChanges
    api_key: str  # kept, created or replaced
    key_file: str
    password_file: str

    @property
    def changed_anything(self) -> bool:
        """True when Kuma or the key file differ from before the run."""
        m = self.monitors
        return (
            self.admin_created
            or bool(m.created or m.changed or m.removed)
            or self.api_key != "kept"
        )

    def to_json(self) -> str:
        """The report as one JSON object (no secret in it)."""
        m = self.monitors
        return json.dumps(
            {
                "url": self.url,
                "admin": "created" if self.admin_created else "existing",
                "created": m.created,
                "changed": m.changed,
                "removed": m.removed,
                "unchanged": m.unchanged,
                "unmanaged": m.unmanaged,
                "inactive": m.inactive,
                "api_key": self.api_key,
                "key_file": self.key_file,
            },
            sort_keys=True,
        )

    def lines(self) -> list[str]:
        """Human lines: the counts, then each list that is not empty."""
        m = self.monitors
        admin = (
            f"admin account created (its password: {self.password_file})"
            if self.admin_created
            else "logged in as admin"
        )
        out = [
            f"Uptime Kuma at {self.url}: {admin}",
            f"monitors: {len(m.created)} created, {len(m.changed)} changed, {len(m.removed)}"
            f" removed, {len(m.unchanged)} unchanged; {len(m.unmanaged)} made by hand (left"
            f" alone), {len(m.inactive)} of profiles not running (not applied)",
        ]
        changed = [f"{name} ({', '.join(fields)})" for name, fields in sorted(m.changed.items())]
        for title, names in (
            ("created", m.created),
            ("changed", changed),
            ("removed", m.removed),
            ("made by hand, left alone", m.unmanaged),
            ("not applied, their profiles are not running", m.inactive),
        ):
            if names:
                out.append(f"{title}: {', '.join(names)}")
        clash = sorted(set(m.unmanaged) & {*m.created, *m.changed, *m.unchanged})
        if clash:
            out.append(
                f"a monitor made by hand has the name of a managed one: {', '.join(clash)};"
                " rename it in Kuma, or Prometheus sees two monitors of one name"
            )
        out.append(f"API key for Prometheus: {self.api_key} ({self.key_file})")
        return out
