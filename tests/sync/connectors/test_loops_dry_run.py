"""Loops' dry-run cost: one PUT per contact at its documented 10 requests/s, so a million
contacts take about 28 hours."""

import pytest

from sync import services
from sync.engine import destination_connector

pytestmark = pytest.mark.django_db


def test_a_million_contacts_take_about_28_hours_at_10_per_second(sandbox_destination):
    destination = sandbox_destination("loops")
    connector = destination_connector(destination=destination, throttle=False)
    requests = connector.request_count(
        contacts=1_000_000,
        without_remote_id=1_000_000,
        chunk_size=services.chunk_size_for(destination),
    )
    assert requests == 1_000_000
    assert destination.effective_rate_limit == 10.0
    assert services.duration_text(requests / destination.effective_rate_limit) == "27.8 hours"
