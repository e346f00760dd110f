"""Which alerts of Alertmanager's answer, and which notifications the alert sink recorded, are
a drill scenario's.

An alert is the scenario's when it has the scenario's alert name and every label it expects. A
notification to a team receiver is Slack-shaped (alertmanager/templates/notifications.tmpl): its
title names the alert, the service and the SLO, and its text each alert's team, category,
service and burn; those are matched, and the other labels (a provider, the severity) only on
Alertmanager's own copy of the alert. A webhook's notification carries the alerts' labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from finance_stack.scenarios import Scenario

# "[FIRING:2] SLOErrorBudgetBurn | payment | availability", "[RESOLVED] ServiceDown | payment"
_TITLE = re.compile(r"\[(FIRING|RESOLVED)(?::\d+)?\] (\S+)(?: \| (\S+))?(?: \| (\S+))?")
# "team `payments` | category `slo` | service `payment` | burn `fast`"
_OWNER = re.compile(
    r"team `([^`]*)` \| category `([^`]*)` \| service `([^`]*)`(?: \| burn `([^`]*)`)?"
)


def matching(listing: object, scenario: Scenario) -> list[dict[str, object]]:
    """The alerts of an /api/v2/alerts answer that are the scenario's: its name and labels."""
    wanted = {"alertname": scenario.alert, **scenario.labels}
    found = []
    for alert in listing if isinstance(listing, list) else []:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        if isinstance(labels, dict) and all(labels.get(k) == v for k, v in wanted.items()):
            found.append(alert)
    return found


def state_of(alert: Mapping[str, object]) -> tuple[str, str]:
    """(state, why it is suppressed) of one alert of Alertmanager's answer."""
    status = alert.get("status")
    if not isinstance(status, dict):
        return "unknown", ""
    reasons = [
        f"{what} {', '.join(map(str, status.get(key) or []))}"
        for key, what in (
            ("inhibitedBy", "inhibited by"),
            ("silencedBy", "silenced by"),
            ("mutedBy", "muted by time interval"),
        )
        if status.get(key)
    ]
    return str(status.get("state")), "; ".join(reasons)


def notified(body: object, scenario: Scenario) -> str | None:
    """ "firing" or "resolved" if `body` (a notification the sink recorded) is about the
    scenario's alert; else None. Slack-shaped and webhook-shaped bodies are understood."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("alerts"), list):  # a webhook: the alerts with their labels
        ours = matching(body["alerts"], scenario)
        status = body.get("status")
        return str(status) if ours and status in ("firing", "resolved") else None
    attachments = body.get("attachments")
    first = attachments[0] if isinstance(attachments, list) and attachments else None
    if not isinstance(first, dict):
        return None
    title = _TITLE.fullmatch(str(first.get("title", "")))
    if title is None:
        return None
    status, alertname, service, slo = title.groups()
    labels = scenario.labels
    if (alertname, service, slo) != (scenario.alert, labels.get("service"), labels.get("slo")):
        return None
    owners = _OWNER.findall(str(first.get("text", "")))
    wanted = tuple(labels.get(key, "") for key in ("team", "category", "service", "burn"))
    if not any(
        all(not want or got == want for want, got in zip(wanted, owner, strict=True))
        for owner in owners
    ):
        return None
    return status.lower()


def receivers_of(alert: Mapping[str, object]) -> list[str]:
    """The receiver names Alertmanager routes one alert of its answer to."""
    listed = alert.get("receivers")
    names = (
        {str(r.get("name")) for r in listed if isinstance(r, dict)}
        if isinstance(listed, list)
        else set()
    )
    return sorted(names)


def entries(listing: object) -> list[dict[str, object]]:
    """The objects of a JSON list answer (the sink's /notifications), oldest first."""
    return [e for e in listing if isinstance(e, dict)] if isinstance(listing, list) else []
