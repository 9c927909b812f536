"""The admin in django-unfold: the sidebar lists only what each role may open, every page loads
only this site's files (nothing from a CDN), the dashboard's charts are unfold's, dark mode is
offered."""

import html
import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync.models import ContactSyncState, SyncAttempt, SyncRun, SyncStatus
from tests.conftest import PLATFORMS

pytestmark = pytest.mark.django_db

ROLES = ["Marketing staff", "Sync admins", "Managers"]
# Tags whose src or href the browser fetches as it renders the page (links <a> are not).
LOADING_TAGS = {"script", "link", "img", "iframe", "source", "video", "audio", "embed"}
EXTERNAL = re.compile(r"^\s*(\w+:)?//")


class _Links(HTMLParser):
    """The sidebar's links (inside #nav-sidebar-apps) and every URL the page loads."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # >0 inside the sidebar's list of links
        self.sidebar: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "nav-sidebar-apps":
            self.depth = 1
        elif self.depth and tag == "div":
            self.depth += 1
        if self.depth and tag == "a" and attrs.get("href"):
            self.sidebar.append(attrs["href"])
        if tag in LOADING_TAGS:
            self.loads += [attrs[name] for name in ("src", "href") if attrs.get(name)]

    def handle_endtag(self, tag):
        if self.depth and tag == "div":
            self.depth -= 1


def _parse(response) -> _Links:
    assert response.status_code == 200, response.status_code
    links = _Links()
    links.feed(response.content.decode())
    return links


@pytest.fixture
def world(sandbox_destination):
    destination = sandbox_destination(PLATFORMS[0])
    seed_demo_contacts(2)
    contact = Contact.objects.first()
    ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.FAILED, last_error="x"
    )
    for hours_ago in (1, 3, 3):
        SyncAttempt.objects.create(
            destination=destination,
            contact=contact,
            trigger="save",
            outcome="failed",
            started_at=timezone.now() - timedelta(hours=hours_ago),
        )
    SyncRun.objects.create(trigger="action", total=4, created=1, destination=destination)
    return contact, destination


@pytest.fixture
def role_client(client, django_user_model):
    def login(role):
        user = django_user_model.objects.create_user(
            re.sub(r"\W+", "-", role.lower()), "someone@example.com", "pw-1", is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return login


def _changelists_open_to(http) -> set[str]:
    """The model lists this client is served (asked one by one)."""
    return {
        url
        for model in admin.site._registry
        if http.get(
            url := reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        ).status_code
        == 200
    }


@pytest.mark.parametrize("role", ROLES)
def test_the_sidebar_lists_exactly_the_pages_the_role_may_open(role_client, world, role):
    http = role_client(role)
    sidebar = set(_parse(http.get(reverse("admin:index"))).sidebar)
    for url in sidebar:
        assert http.get(url).status_code == 200, f"{role} is shown {url} but may not open it"
    dashboard = reverse("sync_dashboard")
    expected = _changelists_open_to(http) | (
        {dashboard} if http.get(dashboard).status_code == 200 else set()
    )
    assert sidebar == expected


def test_a_superuser_sees_every_list_in_the_sidebar(admin_client_logged, world):
    sidebar = set(_parse(admin_client_logged.get(reverse("admin:index"))).sidebar)
    assert sidebar == _changelists_open_to(admin_client_logged) | {reverse("sync_dashboard")}


def _pages(contact, destination) -> list[str]:
    pages = [
        reverse("admin:index"),
        reverse("sync_dashboard"),
        reverse("admin:contacts_contact_import"),
        reverse("admin:contacts_contact_history", args=[contact.pk]),
        reverse("admin:sync_destination_history", args=[destination.pk]),
    ]
    for model in admin.site._registry:
        app, name = model._meta.app_label, model._meta.model_name
        pages.append(reverse(f"admin:{app}_{name}_changelist"))
        first = model._default_manager.first()
        if first is not None:
            pages.append(reverse(f"admin:{app}_{name}_change", args=[first.pk]))
    return pages


def test_pages_load_nothing_from_outside(admin_client_logged, world):
    """Every file a page loads is this site's: a path, never a scheme or a protocol-relative
    `//host` (fonts, icons, Chart.js and scripts come from unfold's static files); no inline
    style fetches one either."""
    for page in _pages(*world):
        response = admin_client_logged.get(page)
        outside = [url for url in _parse(response).loads if EXTERNAL.match(url)]
        outside += re.findall(r"url\(\s*['\"]?\s*(?:\w+:)?//[^)]*\)", response.content.decode())
        assert not outside, f"{page} loads {outside}"


def test_dashboard_charts_are_unfolds_with_the_selectors_counts(admin_client_logged, world):
    _, destination = world
    page = admin_client_logged.get(reverse("sync_dashboard")).content.decode()
    assert "<svg" not in page  # no chart drawn by us
    assert "/static/unfold/js/chart/chart.js" in page  # Chart.js from unfold's static files
    card = page.split(f'id="destination-{destination.pk}"')[1]
    charts = re.findall(r'<canvas class="chart"[^>]*data-type="bar" data-value="([^"]+)"', card)
    hourly, daily = (json.loads(html.unescape(value)) for value in charts[:2])
    assert len(hourly["labels"]) == 24 and len(daily["labels"]) == 7
    assert sorted(v for v in hourly["datasets"][0]["data"] if v) == [1, 2]
    assert sum(daily["datasets"][0]["data"]) == 3


def test_dark_mode_is_offered(admin_client_logged):
    page = admin_client_logged.get(reverse("admin:index")).content.decode()
    assert "switchTheme('dark')" in page


def test_logging_in_on_the_admins_page_lands_on_its_home(client, django_user_model):
    django_user_model.objects.create_user("staff", "s@example.com", "pw-x-123456", is_staff=True)
    response = client.post(reverse("admin:login"), {"username": "staff", "password": "pw-x-123456"})
    assert response.status_code == 302 and response.url == reverse("admin:index")
