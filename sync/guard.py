"""The vendor-change guard, worker side: run a destination's probe (its connector's declared
read calls, checked by sync/connectors/probe.py), store the result, and raise or clear the one
destination-wide warning. Called by the daily task and by "Test connection".

A probe call that fails (a 403 from a key without that permission level, a timeout) is shown
as that call's failure: it never pauses the destination (pausing is the push path's answer to
refused credentials) and never counts as a change of shape.
"""

from datetime import timedelta

from django.utils import timezone

from sync import alerts
from sync.connectors.probe import ProbeOutcome, run_probe
from sync.engine import destination_connector
from sync.models import Destination

PROBE_EVERY_HOURS = 24


def destination_probe(*, destination: Destination) -> list[ProbeOutcome]:
    """Probe the destination now. The warning names every call whose answer changed; it is
    emailed once when it appears or changes, and cleared when every answer has its shape back.

    Raises ConnectorConfigurationError when the destination cannot be used as configured."""
    connector = destination_connector(destination=destination)
    outcomes = run_probe(connector)
    warning = "; ".join(f"{o.call}: {o.detail}" for o in outcomes if o.outcome == "changed")
    now = timezone.now()
    rows = Destination.objects.filter(pk=destination.pk)
    rows.update(
        probe_checked_at=now,
        probe_results=[o.as_dict() for o in outcomes],
        probe_due_at=now + timedelta(hours=PROBE_EVERY_HOURS),
    )
    # Only the probe that changes the warning sends the email, however many run at once.
    raised = rows.exclude(probe_warning=warning).update(probe_warning=warning)
    if raised and warning:
        alerts.vendor_change(destination, outcomes)
    destination.probe_warning = warning
    return outcomes


def probe_summary(outcomes: list[ProbeOutcome]) -> str:
    """One sentence for the admin: how many calls answered as expected, and each other one."""
    ok = sum(1 for o in outcomes if o.outcome == "ok")
    parts = [f"{ok} of {len(outcomes)} probe calls answered in the expected shape"]
    for outcome in outcomes:
        if outcome.outcome == "changed":
            parts.append(f"{outcome.call} changed: {outcome.detail}")
        elif outcome.outcome == "failed":
            parts.append(f"{outcome.call} failed: {outcome.detail}")
    return "; ".join(parts) + "."
