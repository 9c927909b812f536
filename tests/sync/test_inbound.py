"""The inbound endpoint, whatever the platform: unknown tokens, the URL check, size and body
refusals, counting, and the ledger's ordering rule. Each platform's own deliveries are tested
in tests/sync/connectors/test_<platform>_inbound.py."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.consent import consent_record
from contacts.models import ConsentEntry, Contact
from sync.connectors.inbound import MAX_BODY
from sync.models import Destination, InboundEvent, InboundRefusal, new_inbound_token
from sync.selectors import destination_inbound_summary, destination_inbound_url
from tests.conftest import PLATFORMS

pytestmark = pytest.mark.django_db


def url_of(destination):
    return reverse("sync_inbound", kwargs={"token": destination.inbound_token})


@pytest.mark.parametrize("platform", PLATFORMS)
def test_unknown_tokens_get_the_same_404_with_no_hint(client, sandbox_destination, platform):
    destination = sandbox_destination(platform)
    answers = set()
    for token in ("x", new_inbound_token(), destination.inbound_token[:-1]):
        for method in ("get", "post"):
            response = getattr(client, method)(f"/inbound/{token}/")
            answers.add((response.status_code, response.content))
    assert answers == {(404, b"Not found")}
    assert not InboundRefusal.objects.exists()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_get_is_answered_200_and_a_post_needs_no_csrf_token(sandbox_destination, platform):
    from django.test import Client

    destination = sandbox_destination(platform)
    client = Client(enforce_csrf_checks=True)
    assert client.get(url_of(destination)).status_code == 200
    response = client.post(url_of(destination), data=b"{}", content_type="application/json")
    assert response.status_code in (400, 401)  # refused by the platform's verifier, not CSRF
    assert InboundRefusal.objects.filter(destination=destination).exists()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_body_over_the_limit_is_refused_unread(client, sandbox_destination, platform):
    destination = sandbox_destination(platform)
    body = b"[" + b" " * MAX_BODY + b"]"
    response = client.post(url_of(destination), data=body, content_type="application/json")
    assert response.status_code == 413
    refusal = InboundRefusal.objects.get(destination=destination)
    assert (refusal.reason, refusal.count) == ("too_large", 1)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_unverifiable_delivery_stores_nothing(client, sandbox_destination, platform):
    destination = sandbox_destination(platform)
    for body in (b"not json", b'{"eventName": "contact.unsubscribed"}', b"[]"):
        response = client.post(url_of(destination), data=body, content_type="application/json")
        assert response.status_code in (400, 401)
    assert not InboundEvent.objects.exists()
    assert sum(InboundRefusal.objects.values_list("count", flat=True)) == 3


def test_the_url_needs_a_public_base_url(sandbox_destination, settings):
    destination = sandbox_destination(PLATFORMS[0])
    settings.SYNC_PUBLIC_URL = ""
    assert destination_inbound_url(destination) == ""
    assert "SYNC_PUBLIC_URL" in destination_inbound_summary(destination)["setup"]
    settings.SYNC_PUBLIC_URL = "https://contacts.example.com/"
    assert destination_inbound_url(destination) == (
        f"https://contacts.example.com/inbound/{destination.inbound_token}/"
    )


def test_every_destination_has_its_own_token(sandbox_destination):
    tokens = {sandbox_destination(p).inbound_token for p in PLATFORMS}
    assert len(tokens) == len(PLATFORMS) and all(len(t) >= 40 for t in tokens)
    assert Destination.objects.filter(inbound_token="").count() == 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_declares_a_verifier_with_steps(platform):
    from sync.connectors import get_class

    cls = get_class(platform)
    assert cls.inbound is not None, f"{platform} declares no inbound verifier"
    steps = cls.inbound.registration_steps("https://example.test/inbound/t/")
    assert steps and any("https://example.test/inbound/t/" in step for step in steps)


# ------------------------------------------------------------------ the ledger's order


def test_the_latest_change_wins_and_an_opt_out_wins_a_tie():
    contact = Contact.objects.create(email="ledger@example.com")
    now = timezone.now()
    record = {"contact": contact, "channel": "email", "source": "platform"}
    assert consent_record(**record, status="unsubscribed", occurred_at=now)
    assert not consent_record(**record, status="subscribed", occurred_at=now)  # tie: opt-out
    assert not consent_record(
        **record, status="subscribed", occurred_at=now - datetime.timedelta(seconds=1)
    )
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert consent_record(
        **record, status="subscribed", occurred_at=now + datetime.timedelta(seconds=1)
    )
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert list(ConsentEntry.objects.order_by("id").values_list("status", "applied")) == [
        ("unsubscribed", True),
        ("subscribed", False),
        ("subscribed", False),
        ("subscribed", True),
    ]


def test_a_person_changing_a_status_in_the_admin_writes_a_ledger_entry(admin_client_logged):
    from tests.contacts.admin_post import contact_post

    response = admin_client_logged.post(
        reverse("admin:contacts_contact_add"),
        contact_post(email="person@example.com", email_status="subscribed"),
    )
    assert response.status_code == 302, response.content[:2000]
    contact = Contact.objects.get(email="person@example.com")
    assert set(ConsentEntry.objects.values_list("channel", "source")) == {
        ("email", "admin"),
        ("sms", "admin"),
    }
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        contact_post(
            email="person@example.com", email_status="unsubscribed", external_id=contact.external_id
        ),
    )
    assert response.status_code == 302
    latest = ConsentEntry.objects.filter(channel="email").order_by("-id").first()
    assert (latest.status, latest.source, latest.source_label) == ("unsubscribed", "admin", "root")
    assert ConsentEntry.objects.filter(channel="sms").count() == 1  # unchanged: no new entry
