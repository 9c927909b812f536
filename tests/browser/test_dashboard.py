"""A manager reads the sync dashboard, follows an error group to its contacts, changes nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.browser.conftest import save_screenshot
from tests.conftest import platform_with

pytestmark = pytest.mark.browser

INVALID_EMAIL = 'HTTP 400: "email" is not a valid email address'
TAKEN_EMAIL = "HTTP 409: Email or userId is already in use"
# Actions that only read: the payload preview, the push preview and the CSV export.
READ_ONLY_ACTIONS = {"", "preview_payloads", "preview_push", "export_admin_action"}


def _failed_history(destination, contacts):
    """Synced and failed contacts on one destination, with attempts over the last hours."""
    now = timezone.now()
    failed = {
        contacts[0]: INVALID_EMAIL,
        contacts[1]: INVALID_EMAIL,
        contacts[2]: INVALID_EMAIL,
        contacts[3]: TAKEN_EMAIL,
    }
    for contact in contacts:
        error = failed.get(contact, "")
        ContactSyncState.objects.create(
            contact=contact,
            destination=destination,
            last_error=error,
            status=SyncStatus.FAILED if error else SyncStatus.SYNCED,
            remote_id="" if error else f"remote-{contact.pk}",
        )
        for hours_ago in (5, 2):
            SyncAttempt.objects.create(
                destination=destination,
                contact=contact,
                external_id=contact.external_id,
                trigger="action",
                started_at=now - timedelta(hours=hours_ago, minutes=10),
                outcome="created" if hours_ago == 5 else ("failed" if error else "updated"),
                http_status=400 if error and hours_ago == 2 else 200,
                error=error,
            )
    return [c for c, e in failed.items() if e == INVALID_EMAIL]


@pytest.fixture
def failures_on_one_destination(destinations):
    """Eight contacts on one destination: four failed (two errors), four synced; returns the
    destination and the contacts of the larger error group."""
    seed_demo_contacts(8)
    target = destinations[platform_with()]
    return target, _failed_history(target, list(Contact.objects.order_by("pk")))


def test_manager_reads_the_dashboard_and_can_change_nothing(
    page, login, role_user, failures_on_one_destination
):
    target, _ = failures_on_one_destination
    login(role_user("Managers", "mia"))

    page.click("#sync-dashboard-link a")
    page.wait_for_url("**/admin/sync/dashboard/")
    card = page.locator(f"#destination-{target.pk}")
    charts = card.locator("canvas.chart")  # unfold's bar charts, drawn by its Chart.js
    assert charts.count() == 2
    drawn = charts.evaluate_all("cs => cs.map(c => Chart.getChart(c).data.datasets[0].data)")
    per_hour = drawn[0]
    assert len(per_hour) == 24 and sum(v > 0 for v in per_hour) == 2, per_hour
    groups = card.locator(".sync-errors a")
    assert groups.all_inner_texts() == [f"3 × {INVALID_EMAIL}", f"1 × {TAKEN_EMAIL}"]
    assert page.locator("form[action*='/retry/'], form[action*='/cancel/']").count() == 0
    save_screenshot(page, "dashboard")

    card.locator(".sync-badge.sync-failed").click()  # "failed 4": the destination's failures
    page.wait_for_url("**/contacts/contact/?*")
    failed = ContactSyncState.objects.filter(destination=target, status=SyncStatus.FAILED)
    emails = page.locator("#result_list tbody td.field-email").all_inner_texts()
    assert sorted(emails) == sorted(failed.values_list("contact__email", flat=True))
    assert page.locator("a[href$='/contacts/contact/add/']").count() == 0
    assert page.locator("a[href$='/contacts/contact/import/']").count() == 0
    actions = page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert set(actions) <= READ_ONLY_ACTIONS, actions
    assert page.locator("#result_list input[type=text], #result_list select").count() == 0

    page.locator("#result_list tbody th a").first.click()
    page.wait_for_url("**/change/?*")
    panel = page.locator("#sync-panel")
    assert panel.locator("tr", has_text=target.name).locator(".sync-error").inner_text() in (
        INVALID_EMAIL,
        TAKEN_EMAIL,
    )
    assert page.locator("button[name=_save], button[name=_continue]").count() == 0
    assert page.locator("#content-main form input[type=text]").count() == 0
    assert page.locator("a[href$='/delete/']:visible, .add-row:visible").count() == 0


def test_error_group_link_lists_only_its_contacts(
    page, login, role_user, failures_on_one_destination
):
    target, affected = failures_on_one_destination
    login(role_user("Managers", "mia"))

    page.click("#sync-dashboard-link a")
    page.wait_for_url("**/admin/sync/dashboard/")
    page.locator(f"#destination-{target.pk} .sync-errors a").first.click()
    page.wait_for_url("**/contacts/contact/?*")
    assert "sync_error=" in page.url, page.url
    emails = page.locator("#result_list tbody td.field-email").all_inner_texts()
    assert sorted(emails) == sorted(c.email for c in affected)


def test_the_dashboard_charts_inbound_events_and_tables_opt_outs(
    page, login, role_user, destinations
):
    """Events received per hour and platform, drawn by unfold's Chart.js with both axes
    titled and a legend; the opt-outs table counts Loops' hard-bounce fan-out once."""
    from sync.models import InboundEvent

    now = timezone.now()
    loops = destinations["loops"]

    def received(destination, kind, hours_ago, who):
        at = now - timedelta(hours=hours_ago)
        InboundEvent.objects.create(
            destination=destination,
            platform=destination.platform,
            key=f"{kind}-{who}-{hours_ago}",
            kind=kind,
            raw_type=kind,
            remote_id=who,
            email=f"{who}@example.com",
            occurred_at=at,
            received_at=at,
            body={},
        )

    received(loops, "hard_bounce", 3, "a")
    received(loops, "unsubscribed", 3, "a")  # the fan-out of the bounce
    received(loops, "unsubscribed", 1, "b")
    other = next(d for slug, d in destinations.items() if slug != "loops")
    received(other, "recorded", 30, "c")
    login(role_user("Managers", "mia"))
    page.goto(page.url.split("/admin/")[0] + "/admin/sync/dashboard/")
    chart = page.locator("#sync-inbound canvas.chart")
    assert chart.count() == 1
    drawn = chart.evaluate(
        """c => { const chart = Chart.getChart(c); return {
            type: chart.config.type,
            series: chart.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)]),
            points: chart.data.labels.length,
            x: chart.options.scales.x.title.text, y: chart.options.scales.y.title.text,
            legend: chart.options.plugins.legend.display}; }"""
    )
    assert drawn["type"] == "line" and drawn["points"] == 48 and drawn["legend"]
    assert (drawn["x"], drawn["y"]) == ("hour (local time)", "events received")
    totals = dict(drawn["series"])
    assert totals[loops.connector_class.label] == 3 and totals[other.connector_class.label] == 1
    row = page.locator(f"#sync-opt-outs tr[data-destination='{loops.pk}'] td")
    assert row.all_inner_texts() == ["1", "1", "0", "0", "2"]
    page.locator("#sync-inbound").scroll_into_view_if_needed()
    save_screenshot(page, "dashboard-inbound", full_page=False)
