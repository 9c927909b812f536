"""Secrets never stored or shown, whatever a platform answers: a listener at the destination's
URL echoes every header it received (raw and in base64) in its error and success bodies, and
nothing secret may reach the database, the logs, an admin page, a message or an email."""

import base64
import logging
import re
from urllib.parse import quote

import pytest
from django.apps import apps
from django.core import mail, serializers
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import alerts, services
from sync.models import Destination
from sync.redaction import REDACTED, Redactor, ScrubSecretsFilter, scrub
from tests.conftest import PLATFORMS
from tests.sync.listener import Listener

pytestmark = pytest.mark.django_db


def _needles(sandbox_env, listener) -> set[str]:
    """Every secret form that travelled: the values, their base64, and the parts of each
    authentication header the listener saw (Basic tokens, request signatures)."""
    needles = set()
    for value in sandbox_env.values():
        needles |= {value, base64.b64encode(value.encode()).decode()}
    for request in listener.requests:
        for name, value in request["headers"].items():
            if name.lower() in ("authorization", "x-api-authorization"):
                token = value.split()[-1]
                needles.add(token)
                needles |= {part for part in re.split(r"[:=]", token) if len(part) > 8}
    return needles


def _database_dump() -> str:
    return "\n".join(
        serializers.serialize("json", model._default_manager.all()) for model in apps.get_models()
    )


def _admin_pages(client) -> dict[str, str]:
    from django.contrib import admin

    pages = {}
    for model in admin.site._registry:
        app, name = model._meta.app_label, model._meta.model_name
        urls = [reverse(f"admin:{app}_{name}_changelist")]
        first = model._default_manager.first()
        if first is not None:
            urls.append(reverse(f"admin:{app}_{name}_change", args=[first.pk]))
        for url in urls:
            pages[url] = client.get(url).content.decode()
    pages["dashboard"] = client.get(reverse("sync_dashboard")).content.decode()
    return pages


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_echoed_credential_is_kept_nowhere(
    admin_client_logged, sandbox_destination, sandbox_env, caplog, settings, platform
):
    settings.SYNC_ALERT_MIN_ATTEMPTS = 1
    caplog.set_level(logging.DEBUG)
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    shown = []
    with Listener(status=400) as listener:
        destination = sandbox_destination(platform, base_url=f"{listener.url}/")
        for status in (400, 500, 200, 401):
            listener.status = status
            ok, message = services.destination_test_connection(destination=destination)
            shown.append(message)
            try:
                services.destination_refresh_options(destination=destination)
            except Exception as err:  # noqa: BLE001  (its text is what a person would see)
                shown.append(str(err))
            services.contact_push(
                contact_id=contact.pk,
                destination=destination,
                context=services.PushContext(trigger="action", force=True),
            )
            Destination.objects.filter(pk=destination.pk).update(paused_at=None)
            destination.refresh_from_db()
        alerts.failure_rates_check()
    assert listener.requests, "the listener was reached"
    needles = _needles(sandbox_env, listener)
    texts = {
        "database": _database_dump(),
        "logs": caplog.text,
        "messages": "\n".join(shown),
        "mail": "\n".join(m.subject + m.body for m in mail.outbox),
        **_admin_pages(admin_client_logged),
    }
    assert REDACTED in texts["database"], "the echo was kept, redacted"
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"a secret ({needle[:6]}…) is in {where}"


def test_the_redactor_knows_every_form_a_secret_travels_in():
    secret = "sk+live/abcdef123456"
    redact = Redactor([secret])
    redact.add_header("Basic " + base64.b64encode(f"contact-sync:{secret}".encode()).decode())
    redact.add_header("IWS key-123456:0123456789abcdef0123456789abcdef01234567")
    echoed = " | ".join(
        [
            secret,
            base64.b64encode(secret.encode()).decode(),
            base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
            quote(secret, safe=""),
            base64.b64encode(f"contact-sync:{secret}".encode()).decode(),
            "0123456789abcdef0123456789abcdef01234567",
            "key-123456",
        ]
    )
    kept = redact(echoed)
    assert "abcdef123456" not in kept and "0123456789abcdef" not in kept
    assert "key-123456" not in kept
    assert kept.count(REDACTED) >= 6


def test_log_records_are_scrubbed(monkeypatch):
    monkeypatch.setenv("SYNC_CREDENTIAL_LOGGED", "sk-logged-987654321")
    monkeypatch.setenv("UNRELATED_SETTING", "plain-value-1234")
    record = logging.LogRecord(
        "sync", logging.ERROR, __file__, 1, "saw %s", ("sk-logged-987654321",), None
    )
    try:
        raise RuntimeError("token sk-logged-987654321 refused")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    ScrubSecretsFilter().filter(record)
    assert "sk-logged" not in record.getMessage() and "sk-logged" not in record.exc_text
    assert scrub("plain-value-1234") == "plain-value-1234"  # only credential variables


def test_scheme_words_of_a_header_are_not_redacted():
    redact = Redactor([])
    redact.add_header("Token token=sandbox-cendyn-secret")
    assert redact("Invalid token: sandbox-cendyn-secret") == "Invalid token: [redacted]"
    redact.add_header("Basic " + base64.b64encode(b"contact-sync:sk-key-123456").decode())
    assert redact("from contact-sync: sk-key-123456") == "from contact-sync: [redacted]"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_signed_headers_that_are_no_secret_leave_the_logged_url_as_sent(
    sandbox_destination, platform
):
    """Only a header carrying a credential is learnt by the redactor: a version or a date a
    platform signs with would otherwise blank the same text in every logged URL."""
    from sync.engine import destination_connector

    connector = destination_connector(destination=sandbox_destination(platform), throttle=False)
    connector.test_connection()
    (*_, call) = connector.drain_exchanges()
    assert REDACTED not in call.url, call.url
