"""Secrets kept, access enforced, hostile text escaped, production settings checked."""

import logging
import os
import secrets
import subprocess
import sys

import pytest
import requests
from django.apps import apps
from django.contrib.auth.models import Group
from django.core import serializers
from django.urls import reverse
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, Destination, SyncAttempt, SyncRun, SyncStatus
from sync.redaction import secret_forms
from tests.conftest import platform_with
from tests.contacts.admin_post import contact_post
from tests.sync.conftest import PLATFORMS

pytestmark = pytest.mark.django_db
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def role_client(client, django_user_model):
    def login(role):
        user = django_user_model.objects.create_user(
            role.lower().replace(" ", "-"),
            f"{role[:3]}@example.com",
            "pw-role-123456",
            is_staff=True,
        )
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return login


# ------------------------------------------------------------------------------- access


def _admin_urls(contact, destination, attempt, run, state):
    return {
        "contact list": reverse("admin:contacts_contact_changelist"),
        "contact page": reverse("admin:contacts_contact_change", args=[contact.pk]),
        "contact add": reverse("admin:contacts_contact_add"),
        "contact delete": reverse("admin:contacts_contact_delete", args=[contact.pk]),
        "destination list": reverse("admin:sync_destination_changelist"),
        "destination add": reverse("admin:sync_destination_add"),
        "attempt log": reverse("admin:sync_syncattempt_changelist"),
        "attempt": reverse("admin:sync_syncattempt_change", args=[attempt.pk]),
        "runs": reverse("admin:sync_syncrun_changelist"),
        "run": reverse("admin:sync_syncrun_change", args=[run.pk]),
        "sync states": reverse("admin:sync_contactsyncstate_changelist"),
        "dashboard": reverse("sync_dashboard"),
        "group add": reverse("admin:contacts_group_add"),
    }


ALLOWED = {  # page -> roles that may open it
    "contact list": {"Marketing staff", "Sync admins", "Managers"},
    "contact page": {"Marketing staff", "Sync admins", "Managers"},
    "contact add": {"Marketing staff", "Sync admins"},
    "contact delete": {"Sync admins"},
    "destination list": {"Marketing staff", "Sync admins", "Managers"},
    "destination add": {"Sync admins"},
    "attempt log": {"Sync admins", "Managers"},
    "attempt": {"Sync admins", "Managers"},
    "runs": {"Sync admins", "Managers"},
    "run": {"Sync admins", "Managers"},
    "sync states": {"Marketing staff", "Sync admins", "Managers"},
    "dashboard": {"Marketing staff", "Sync admins", "Managers"},
    "group add": {"Sync admins"},
}


@pytest.fixture
def objects(sandbox_destination):
    destination = sandbox_destination(platform_with(bulk=False))
    seed_demo_contacts(2)
    contact = Contact.objects.first()
    state = ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.FAILED, last_error="x"
    )
    attempt = SyncAttempt.objects.create(
        destination=destination,
        contact=contact,
        trigger="save",
        outcome="failed",
        started_at=timezone.now(),
    )
    run = SyncRun.objects.create(trigger="action", total=1)
    return contact, destination, attempt, run, state


@pytest.mark.parametrize("role", ["Marketing staff", "Sync admins", "Managers", None])
def test_every_admin_page_as_each_role(role_client, client, objects, role):
    http = role_client(role) if role else client
    for name, url in _admin_urls(*objects).items():
        response = http.get(url)
        if role is None:
            assert response.status_code == 302 and "/login/" in response.url, name
        elif role in ALLOWED[name]:
            assert response.status_code == 200, (role, name)
        else:
            assert response.status_code in (302, 403), (role, name, response.status_code)
            if response.status_code == 302:
                assert "/login/" in response.url or response.url.endswith("/admin/"), name


@pytest.mark.parametrize(
    "role, can_push", [("Marketing staff", False), ("Managers", False), ("Sync admins", True)]
)
def test_push_actions_and_buttons_need_the_push_permission(
    role_client, objects, role, can_push, sandbox
):
    contact, destination, _, run, _ = objects
    http = role_client(role)
    dashboard = http.get(reverse("sync_dashboard")).content.decode()
    assert ("Retry 1 failed" in dashboard) is can_push
    page = http.get(reverse("admin:contacts_contact_changelist"))
    actions = [value for value, _ in page.context["action_form"].fields["action"].choices]
    assert ("push_selected" in actions) is can_push
    assert ("retry_failed" in actions) is can_push
    http.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "push_selected", "_selected_action": [contact.pk]},
    )
    assert SyncRun.objects.filter(trigger="action").exclude(pk=run.pk).exists() is can_push
    retry = http.post(reverse("sync_retry_failed", args=[destination.pk]))
    cancel = http.post(reverse("sync_cancel_run", args=[run.pk]))
    expected = 302 if can_push else 403
    assert (retry.status_code, cancel.status_code) == (expected, expected)


def test_managers_change_nothing(role_client, objects):
    contact = objects[0]
    http = role_client("Managers")
    page = http.get(reverse("admin:contacts_contact_change", args=[contact.pk])).content.decode()
    assert 'name="_save"' not in page and "Add contact" not in page
    before = contact.first_name
    response = http.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        contact_post(contact, first_name="Hacked", external_id=contact.external_id),
    )
    assert response.status_code == 403
    contact.refresh_from_db()
    assert contact.first_name == before


def test_repeated_failed_logins_are_throttled(client, django_user_model, settings):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "right-pass-123")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "boss", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "boss", "password": "right-pass-123"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


# ------------------------------------------------------------------------------ secrets


def test_no_secret_anywhere_after_pushes_failures_and_tests(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    all_destinations,
    sandbox,
    sandbox_env,
    caplog,
    settings,
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged.post(reverse("admin:contacts_contact_add"), contact_post())
    contact = Contact.objects.get()
    for destination in all_destinations:
        services.destination_test_connection(destination=destination)
        services.destination_refresh_options(destination=destination)
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "*", "revoked": True})
    for destination in all_destinations:
        services.contact_push(
            contact_id=contact.pk,
            destination=destination,
            context=services.PushContext(trigger="action", force=True),
        )

    # Every form a credential travels in; the authentication headers as each platform sent
    # them (Basic tokens, signatures) are checked per platform in tests/sync/test_redaction.py.
    needles = set().union(*(secret_forms(value) for value in sandbox_env.values()))
    texts = {"database": _database_dump(), "logs": caplog.text}
    for name, url in _every_admin_page(contact).items():
        texts[name] = admin_client_logged.get(url).content.decode()
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"a secret is in the {where}"
    assert SyncAttempt.objects.filter(http_status=401).count() >= 4


def _database_dump() -> str:
    chunks = []
    for model in apps.get_models():
        chunks.append(serializers.serialize("json", model._default_manager.all()))
    return "\n".join(chunks)


def _every_admin_page(contact) -> dict:
    from django.contrib import admin

    pages = {}
    for model in admin.site._registry:
        app, name = model._meta.app_label, model._meta.model_name
        pages[f"{app}.{name} list"] = reverse(f"admin:{app}_{name}_changelist")
        first = model._default_manager.first()
        if first is not None:
            pages[f"{app}.{name} page"] = reverse(f"admin:{app}_{name}_change", args=[first.pk])
    pages["dashboard"] = reverse("sync_dashboard")
    return pages


# ---------------------------------------------------------------------------- escaping


def test_platform_error_with_html_is_escaped_everywhere(admin_client_logged, sandbox_destination):
    destination = sandbox_destination(platform_with(bulk=False))
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    hostile = (
        f"{destination.connector_class.label} HTTP 400: "
        '<script>alert("owned")</script><img src=x onerror=alert(1)>'
    )
    ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.FAILED, last_error=hostile
    )
    attempt = SyncAttempt.objects.create(
        destination=destination,
        contact=contact,
        trigger="save",
        outcome="failed",
        error=hostile,
        response_excerpt=hostile,
        started_at=timezone.now(),
    )
    Destination.objects.filter(pk=destination.pk).update(
        paused_at=timezone.now(), pause_error=hostile
    )
    for url in [
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        reverse("admin:contacts_contact_changelist"),
        reverse("sync_dashboard"),
        reverse("admin:sync_syncattempt_changelist"),
        reverse("admin:sync_syncattempt_change", args=[attempt.pk]),
        reverse("admin:sync_contactsyncstate_changelist"),
        reverse("admin:sync_destination_change", args=[destination.pk]),
        reverse("admin:sync_destination_changelist"),
    ]:
        page = admin_client_logged.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "&lt;script&gt;" in page or "&amp;lt;script" in page, url


# ---------------------------------------------------------------------- transport, deploy


def test_production_check_deploy_passes():
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "contacts.example.com",
        "DATABASE_URL": "",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {**os.environ, "DJANGO_ENV": "production", "ALLOWED_HOSTS": "x"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("platform", PLATFORMS)
def test_missing_credential_names_the_variable(sandbox_destination, monkeypatch, platform):
    destination = sandbox_destination(platform)
    monkeypatch.delenv(destination.key_env)
    ok, message = services.destination_test_connection(destination=destination)
    assert not ok and destination.key_env in message


def test_a_sync_admin_deletes_a_pushed_contact(role_client, sandbox_destination, settings):
    """The contact's sync states and attempt rows go with it: the engine's records are not a
    permission of their own (a sync admin could not delete a pushed contact before)."""
    settings.SYNC_ON_SAVE_MODE = "queued"
    destination = sandbox_destination(PLATFORMS[0])
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.SYNCED, remote_id="r-1"
    )
    SyncAttempt.objects.create(
        destination=destination,
        contact=contact,
        trigger="action",
        outcome="created",
        started_at=timezone.now(),
    )
    client = role_client("Sync admins")
    url = reverse("admin:contacts_contact_delete", args=[contact.pk])
    page = client.get(url)
    assert page.status_code == 200 and "permission to delete" not in page.content.decode()
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Contact.objects.exists() and not ContactSyncState.objects.exists()
    assert SyncAttempt.objects.get().contact is None  # the log keeps the attempt
