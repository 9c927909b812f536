"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

The live server runs in a thread of this process on the test database (PostgreSQL only: see
tests/conftest.py), so the sandbox, its credentials and `settings` overrides reach it.
A failed test leaves a screenshot in test-artifacts/; with SAVE_SCREENSHOTS=1 the tests also
refresh the pictures in docs/screenshots/ that README shows.
"""

import os
import re
from pathlib import Path

import pytest

from tests.sync.conftest import PLATFORMS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "Browser-test-pw-42"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for the package's tests."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between browser steps are plain synchronous code, so Django's async guard is lifted here
    # (and only while the browser tests run).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser page (own cookies) whose relative URLs go to the live server; a
    screenshot of it is saved in test-artifacts/ when the test fails."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


def save_screenshot(page, name: str, *, full_page: bool = True) -> None:
    """Refresh docs/screenshots/<name>.png, only when SAVE_SCREENSHOTS=1 (normal runs leave the
    tree alone)."""
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def role_user(django_user_model):
    """make(role, username) -> a staff user in that role group, with PASSWORD.

    The groups come from a data migration, but a transactional test's flush empties them, so
    they are put back here from sync.roles (the same definition the migration uses).
    """
    from django.contrib.auth.models import Group, Permission

    from sync.roles import ROLES

    def make(role, username):
        group, _ = Group.objects.get_or_create(name=role)
        if not group.permissions.exists():
            group.permissions.set(
                [
                    Permission.objects.get(content_type__app_label=app, codename=code)
                    for app, code in ROLES[role]
                ]
            )
        user = django_user_model.objects.create_user(
            username, f"{username}@example.com", PASSWORD, is_staff=True
        )
        user.groups.add(group)
        return user

    return make


@pytest.fixture
def login(page):
    """login(user): sign in through the admin's login form, as a person would."""

    def sign_in(user):
        page.goto("/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/admin/")
        assert (
            page.locator("#nav-sidebar-inner").get_by_text(user.username, exact=True).count() == 1
        )

    return sign_in


@pytest.fixture
def destinations(sandbox_destination):
    """One destination per platform, each pointing at the running sandbox."""
    return {platform: sandbox_destination(platform) for platform in PLATFORMS}
