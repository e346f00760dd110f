"""docs/metrics.md is generated from the query specs and matches them byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

from finance_exporter.catalogue import render
from finance_exporter.domains import DOMAINS, LABEL_VALUES, OPEN_LABELS

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "metrics.md"
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def test_catalogue_matches_the_specs() -> None:
    assert CATALOGUE.read_text() == render(), (
        "docs/metrics.md is out of date; regenerate it with: "
        ".venv/bin/python -m finance_exporter.catalogue > docs/metrics.md"
    )


def test_metric_names_follow_the_naming_guide() -> None:
    names = [q.metric.name for queries in DOMAINS.values() for q in queries]
    assert len(names) == len(set(names))
    for query in (q for queries in DOMAINS.values() for q in queries):
        metric = query.metric
        assert NAME.match(metric.name) and metric.name.startswith("finance_"), metric.name
        assert metric.name.endswith("_total") == (metric.kind == "counter"), metric.name
        for label in metric.labels:
            assert label not in metric.name.removeprefix("finance_").split("_"), (
                metric.name,
                label,
            )


def test_every_label_has_a_bounded_value_set_within_the_budget() -> None:
    for query in (q for queries in DOMAINS.values() for q in queries):
        product = 1
        for label in query.metric.labels:
            assert label in LABEL_VALUES or label in OPEN_LABELS, (query.name, label)
            product *= len(LABEL_VALUES.get(label, ())) or query.metric.max_series
        if query.redis is not None:
            assert len(query.redis.label_values) <= query.metric.max_series
        assert product >= 1
        # The budget admits every combination the schema allows, and no more than 300.
        assert query.metric.max_series <= 300, query.name
