"""The destination page's inbound panel: URL, the platform's steps, setup state, last event
and refused deliveries; the registration button for a platform registered by API."""

import html

import pytest
from django.urls import reverse

from sync import connectors
from sync.models import InboundEvent, InboundRefusal
from sync.selectors import destination_inbound_url
from tests.conftest import PLATFORMS

pytestmark = pytest.mark.django_db

BY_API = [c.slug for c in connectors.get_class_list() if c.inbound and c.inbound.registers_by_api]


def page(client, destination):
    response = client.get(reverse("admin:sync_destination_change", args=[destination.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_page_shows_the_url_steps_and_refusals(
    admin_client_logged, sandbox_destination, settings, platform
):
    destination = sandbox_destination(platform)
    settings.SYNC_PUBLIC_URL = ""
    assert "webhooks cannot reach us" in page(admin_client_logged, destination)
    settings.SYNC_PUBLIC_URL = "https://contacts.example.com"
    url = destination_inbound_url(destination)
    admin_client_logged.post(
        url.removeprefix("https://contacts.example.com"),
        data=b"nope",
        content_type="application/json",
    )
    text = page(admin_client_logged, destination)
    assert url in text
    for step in destination.connector_class.inbound.registration_steps(url)[:1]:
        assert step.split(":")[0][:30] in text
    refusal = InboundRefusal.objects.get(destination=destination)
    assert f"{refusal.get_reason_display()}: 1" in text
    assert "Last event received:</strong> none yet" in text


@pytest.mark.parametrize("platform", BY_API)
def test_the_register_button_registers_through_the_platforms_api(
    admin_client_logged, sandbox_destination, settings, platform, sandbox
):
    settings.SYNC_PUBLIC_URL = "https://contacts.example.com"
    destination = sandbox_destination(platform)
    assert "Not registered yet." in page(admin_client_logged, destination)
    button = reverse("admin:sync_destination_register_inbound_button", args=[destination.pk])
    response = admin_client_logged.post(button, follow=True)
    assert response.status_code == 200
    destination.refresh_from_db()
    assert destination.inbound_state["topic"]
    assert "awaiting the confirmation" in page(admin_client_logged, destination)


def test_the_last_event_is_shown(admin_client_logged, sandbox_destination):
    from django.utils import timezone

    destination = sandbox_destination(PLATFORMS[0])
    InboundEvent.objects.create(
        destination=destination,
        platform=destination.platform,
        key="k",
        kind="unsubscribed",
        raw_type="some.event",
        received_at=timezone.now(),
        body={},
        state="applied",
    )
    assert "some.event at" in page(admin_client_logged, destination)


def test_a_failed_event_can_be_processed_again_from_its_admin(
    admin_client_logged, sandbox_destination, immediate_tasks, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    destination = sandbox_destination(PLATFORMS[0])
    failed = InboundEvent.objects.create(
        destination=destination,
        platform=destination.platform,
        key="again",
        kind="recorded",
        received_at=timezone.now(),
        body={},
        state="failed",
        error="boom",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged.post(
            reverse("admin:sync_inboundevent_changelist"),
            {"action": "reprocess_events", "_selected_action": [failed.pk], "index": "0"},
        )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.state, failed.error) == ("ignored", "")
    page = admin_client_logged.get(reverse("admin:sync_inboundevent_changelist"))
    assert page.status_code == 200
