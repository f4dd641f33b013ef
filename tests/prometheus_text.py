"""Read one sample out of a Prometheus text exposition, with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def families(text: str) -> set[str]:
    """The names of the metric families in the exposition; parsing it all proves it is well formed."""
    return {family.name for family in text_string_to_metric_families(text)}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly these labels; None when the exposition lacks it."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None
