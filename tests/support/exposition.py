"""Fetch and parse /metrics into exact label->value maps."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def metrics_url(exporter: object) -> str:
    """The /metrics URL of an in-process exporter."""
    host, port = exporter.server.server_address[:2]  # type: ignore[attr-defined]
    return f"http://{host}:{port}/metrics"


def fetch(
    url: str, timeout_seconds: float = 15.0, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """GET `url`; return the status and body."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
        return response.status, response.read().decode()


def parse(text: str) -> Samples:
    """{sample name: {sorted label pairs: value}} for every sample in an exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def scrape(exporter: object, headers: dict[str, str] | None = None) -> Samples:
    """Scrape an in-process exporter and parse the result."""
    status, body = fetch(metrics_url(exporter), headers=headers)
    assert status == 200, body
    return parse(body)


def by_label(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """{(label values in the given order): value} for one sample name."""
    return {
        tuple(dict(key)[label] for label in labels): value
        for key, value in samples.get(name, {}).items()
    }
