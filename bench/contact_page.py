"""A contact's page and its save, as one admin user does them, costed: the GET of the change
page and the save POST (inline rows posted back unchanged, a new first name), in queued mode
(`SYNC_ON_SAVE_MODE=queued`, the production default: the save queues its pushes).

    .venv/bin/python bench/contact_page.py [--contacts 30] [--repeat 15]
    bin/with-postgres .venv/bin/python bench/contact_page.py

Seeds demo contacts (with their inline rows) and four destinations pointing nowhere (nothing
is sent: the pushes stay queued), then, with Django's test client as a superuser, warms up and
runs `--repeat` rounds of GET then POST. Printed per request: the median wall and CPU time of
the rounds, the queries of one, and its Python function calls (cProfile: a cost the machine's
load does not move, unlike the timings on a shared machine). Written to run unchanged on older
commits (only the models, the demo seeder and the tests' POST builder), so a figure before
and after a change can be taken the same way, in a worktree of each commit.
"""

import argparse
import cProfile
import pstats
import re
import time

from common import median, setup_django

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver", SYNC_ON_SAVE_MODE="queued")
    from django.contrib.auth.models import User
    from django.test import Client

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import connectors
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    seed_demo_contacts(args.contacts)
    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    user = User.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    contact = Contact.objects.order_by("pk").first()
    url = f"/admin/contacts/contact/{contact.pk}/change/"
    rows = {
        name: getattr(contact, name).count()
        for name in ("channels", "custom_values", "memberships", "subscriptions", "external_urls")
    }
    print(f"contact {contact.pk}, inline rows {rows}, {len(connectors.CONNECTORS)} destinations")

    rounds = [_round(client, contact, url, n) for n in range(2)]  # warm: templates, caches
    rounds = [_round(client, contact, url, n) for n in range(args.repeat)]
    for index, name in enumerate(("contact page GET", "save POST")):
        wall = median([r[index][0] for r in rounds]) * 1000
        cpu = median([r[index][1] for r in rounds]) * 1000
        queries, calls = _counted(client, contact, url, index)
        print(
            f"{name}: median {wall:.1f} ms wall, {cpu:.1f} ms CPU; {queries} queries, "
            f"{calls:,} calls"
        )


def _round(client, contact, url, n):
    """One GET of the page and one save; ((wall, cpu) of the GET, (wall, cpu) of the POST)."""
    began, cpu = time.perf_counter(), time.process_time()
    page = client.get(url)
    got = (time.perf_counter() - began, time.process_time() - cpu)
    assert page.status_code == 200, page.status_code
    body = _save_body(contact, page, n)
    began, cpu = time.perf_counter(), time.process_time()
    _save(client, url, body)
    return got, (time.perf_counter() - began, time.process_time() - cpu)


def _save_body(contact, page, n) -> str:
    """The page's form as a browser posts it (form-encoded), with a new first name."""
    from urllib.parse import urlencode

    from tests.contacts.admin_post import contact_post

    contact.refresh_from_db()
    data = contact_post(
        contact,
        first_name=f"Bench {n}",
        email=contact.email,
        external_id=contact.external_id,
        phone=contact.phone,
        country=contact.country,
        csrfmiddlewaretoken=TOKEN.search(page.content.decode()).group(1),
    )
    return urlencode(data)


def _save(client, url, body):
    answer = client.post(url, body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 302, answer.content.decode()[:2000]  # 200: refused


def _counted(client, contact, url, index):
    """(queries, Python calls) of one GET (index 0) or one save POST (index 1)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def request(n):
        page = client.get(url)
        if index == 1:
            _save(client, url, _save_body(contact, page, n))

    # the GET before a save is counted with it: measure the save alone by difference
    def measured(n):
        with CaptureQueriesContext(connection) as captured:
            request(n)
        queries = len(captured)  # before the next request clears the log
        profile = cProfile.Profile()
        profile.enable()
        request(n + 1)
        profile.disable()
        return queries, pstats.Stats(profile).total_calls

    if index == 0:
        return measured(1000)
    page_queries, page_calls = _counted(client, contact, url, 0)
    queries, calls = measured(2000)
    return queries - page_queries, calls - page_calls


if __name__ == "__main__":
    main()
