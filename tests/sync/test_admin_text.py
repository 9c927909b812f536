"""The text defects of the newcomer's walk (issue 12): a record's name shown as written, and an
icon for a browser's /favicon.ico. (The other text fixes are tested in test_admin_feedback.)"""

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from sync.models import Destination

pytestmark = pytest.mark.django_db


def test_a_destination_named_ivvy_reads_ivvy_on_its_own_pages(admin_client_logged):
    call_command("sandbox_destinations", "--url", "http://127.0.0.1:8765", stdout=io.StringIO())
    ivvy = Destination.objects.get(platform="ivvy")
    assert ivvy.name == "iVvy (sandbox)"
    for view in ("change", "history", "delete"):
        page = admin_client_logged.get(reverse(f"admin:sync_destination_{view}", args=[ivvy.pk]))
        html = page.content.decode()
        assert page.status_code == 200, view
        assert "IVvy" not in html, view
        assert "iVvy (sandbox)" in html.split("</h1>")[0], view  # the header's breadcrumb
        assert ">Destinations<" in html.replace("\n", "").replace(" ", ""), (
            view
        )  # labels still capfirst


def test_a_browsers_favicon_ico_is_the_sites_icon():
    from django.contrib.staticfiles import finders

    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert finders.find(response["Location"].removeprefix("/static/"))
