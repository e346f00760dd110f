"""Small builders over the Grafana Foundation SDK: one Prometheus datasource, thresholds, units.

Every panel queries the provisioned Prometheus datasource by uid; thresholds are the alerts'
(prometheus/rules/) so a panel turns red where an alert would fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

PROMETHEUS = models.DataSourceRef(type_val="prometheus", uid="prometheus")
CURRENCIES = ("EUR", "GBP", "USD")
# What a stat shows when its query returns nothing: a money figure whose source is gone (the
# exporter is down, or its datastore has been for longer than the query's max_age), or an up/down
# state of which Prometheus has no target (the service is not running in this profile).
NO_CURRENT_VALUE = "no current value"
NO_TARGET = "no target"

P = TypeVar("P", timeseries.Panel, stat.Panel)


@dataclass(frozen=True)
class Query:
    """One PromQL target: its expression, legend, and whether it is an instant query."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    table: bool = False


def _target(query: Query, ref_id: str) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).ref_id(ref_id).datasource(PROMETHEUS)
    if query.legend:
        target = target.legend_format(query.legend)
    if query.instant:
        target = target.instant()
    else:
        target = target.range()
    if query.exemplar:
        target = target.exemplar(True)
    if query.table:
        target = target.format(prometheus_models.PromQueryFormat.TABLE)
    return target


def _targets(queries: Sequence[Query]) -> list[prometheus.Dataquery]:
    return [_target(q, chr(ord("A") + i)) for i, q in enumerate(queries)]


def _steps(base: str, steps: Sequence[tuple[float, str]]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(None, base), *(models.Threshold(v, c) for v, c in steps)])
    )


def above(limit: float) -> tuple[str, list[tuple[float, str]]]:
    """Green, then red from `limit` up: the alert fires above it."""
    return "green", [(limit, "red")]


def below(limit: float) -> tuple[str, list[tuple[float, str]]]:
    """Red, then green from `limit` up: the alert fires below it."""
    return "red", [(limit, "green")]


def graph(
    title: str,
    queries: Sequence[Query],
    unit: str,
    *,
    description: str = "",
    threshold: tuple[str, list[tuple[float, str]]] | None = None,
    width: int = 12,
    height: int = 8,
    currency: bool = False,
) -> timeseries.Panel:
    """A time series; a threshold is drawn as a dashed line."""
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
    )
    if description:
        panel = panel.description(description)
    if threshold:
        panel = panel.thresholds(_steps(*threshold)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    if currency:
        panel = _currency_overrides(panel)
    return panel


def single(
    title: str,
    queries: Sequence[Query],
    unit: str,
    *,
    description: str = "",
    threshold: tuple[str, list[tuple[float, str]]] | None = None,
    width: int = 6,
    height: int = 5,
    currency: bool = False,
    no_value: str = "",
) -> stat.Panel:
    """A stat of the value now, coloured by the alert's threshold; money without a current
    value says so.

    Its queries are instant queries. A range query reduced with lastNotNull shows a series that
    has gone (its exporter died, and Prometheus marked it stale) with its last value for as long
    as that value is in the dashboard's time range, so a dead source looked current. An instant
    query returns nothing once the series is stale, and the stat shows `no_value`; without a
    range there is no sparkline either, so none is drawn.
    """
    if not no_value and (currency or unit.startswith("currency")):
        no_value = NO_CURRENT_VALUE
    panel = (
        stat.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .targets(_targets([replace(q, instant=True) for q in queries]))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if description:
        panel = panel.description(description)
    if no_value:
        panel = panel.no_value(no_value)
    panel = panel.thresholds(_steps(*threshold) if threshold else _steps("blue", []))
    if currency:
        panel = _currency_overrides(panel)
    return panel


def up_down(title: str, query: Query, *, description: str = "", width: int = 4) -> stat.Panel:
    """A stat of an up/down state (1 up, 0 down) that reads "up" or "down", red when down, and
    "no target" (red too: the base colour) when Prometheus has no such target."""
    return single(
        title,
        [query],
        "none",
        description=description,
        threshold=below(1),
        width=width,
        no_value=NO_TARGET,
    ).mappings(
        [
            models.ValueMap(
                options={
                    "0": models.ValueMappingResult(text="down"),
                    "1": models.ValueMappingResult(text="up"),
                }
            )
        ]
    )


def listing(title: str, query: Query, *, width: int = 24, height: int = 8) -> table.Panel:
    """A table of an instant query's series, one row per series."""
    return (
        table.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .targets(_targets([query]))  # type: ignore[arg-type]
        .span(width)
        .height(height)
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}}
            )
        )
    )


def _currency_overrides(panel: P) -> P:
    """Series named by their currency (legend `{{currency}}`) get that currency's unit."""
    for code in CURRENCIES:
        panel = panel.override_by_name(
            code, [models.DynamicConfigValue(id_val="unit", value=f"currency{code}")]
        )
    return panel


def row(title: str) -> dashboard_builders.Row:
    """A section heading."""
    return dashboard_builders.Row(title)


def variable(name: str, metric: str, label: str) -> dashboard_builders.QueryVariable:
    """A multi-value variable over a label's values, `All` by default."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label.capitalize())
        .datasource(PROMETHEUS)
        .query(f"label_values({metric}, {label})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )
