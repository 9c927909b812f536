"""What `make run` sets up: a demo user per role that can log in with its printed password,
and sandbox destinations that follow the sandbox's port."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from sync import connectors
from sync.models import Destination
from sync.roles import ROLES

pytestmark = pytest.mark.django_db


def test_one_demo_user_per_role_logs_in_with_the_printed_password(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    out = io.StringIO()
    call_command("ensure_demo_users", "--url", "http://127.0.0.1:8001/admin/", stdout=out)
    passwords = json.loads((tmp_path / ".demo-passwords").read_text())
    assert len(passwords) == len(ROLES)
    for role in ROLES:
        (line,) = [line for line in out.getvalue().splitlines() if line.startswith(role)]
        username, password = line.split("user: ")[1].split("  password: ")
        user = get_user_model().objects.get(username=username)
        assert [g.name for g in user.groups.all()] == [role] and not user.is_superuser
        assert user.check_password(password) and user.is_staff
        assert password == passwords[username] and "8001" in line
    again = io.StringIO()
    call_command("ensure_demo_users", stdout=again)  # a second run keeps the passwords
    assert json.loads((tmp_path / ".demo-passwords").read_text()) == passwords


def test_sandbox_destinations_follow_the_sandbox_port():
    call_command("sandbox_destinations", "--url", "http://127.0.0.1:8765", stdout=io.StringIO())
    call_command("sandbox_destinations", "--url", "http://127.0.0.1:9876", stdout=io.StringIO())
    urls = sorted(Destination.objects.values_list("base_url", flat=True))
    assert len(urls) == len(connectors.CONNECTORS)
    assert all(url.startswith("http://127.0.0.1:9876/") for url in urls)
