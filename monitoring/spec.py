"""What a dashboard holds before it is built: rows and panels in order, and its variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard, logs, stat, table, timeseries

Item = dashboard.Row | timeseries.Panel | stat.Panel | table.Panel | logs.Panel


@dataclass
class Content:
    """Rows and panels top to bottom (a row holds the panels after it), then the variables."""

    items: list[Item]
    variables: list[dashboard.QueryVariable] = field(default_factory=list)
