"""Load: N admin users saving contacts at once for a while, in immediate mode (each save pushes
to the four sandbox platforms before the next page), against gunicorn on loopback.

    bin/with-postgres .venv/bin/python bench/load_admin.py [--users 20 --seconds 60]

Bounded in users and time, loopback only. Prints the saves made, the errors (target 0) and
the p50/p95 save time.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

import requests
from common import (
    ROOT,
    SandboxProcess,
    free_port,
    make_destination,
    median,
    sandbox_credentials_env,
    setup_django,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    args = parser.parse_args()
    setup_django(SYNC_ON_SAVE_MODE="immediate", DEBUG="false", ALLOWED_HOSTS="127.0.0.1")
    env = {**os.environ, **sandbox_credentials_env()}
    from django.contrib.auth.models import User

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import connectors

    sandbox = SandboxProcess(rate_limits=False)
    port = free_port()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "--workers",
            str(args.gunicorn_workers),
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for platform in connectors.CONNECTORS:
            make_destination(platform, sandbox.url, rate_limit=1000)
        seed_demo_contacts(args.users)
        password = "load-test-pass-123"
        for i in range(args.users):
            User.objects.create_superuser(f"user{i}", f"user{i}@example.com", password)
        contacts = list(Contact.objects.order_by("pk"))
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/admin/login/")
        timings, errors = [], []
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=_user,
                args=(base, f"user{i}", password, contacts[i], deadline, timings, errors),
            )
            for i in range(args.users)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1] if timings else 0
        print(
            f"{args.users} users for {args.seconds:.0f} s, immediate mode, 4 destinations: "
            f"{len(timings)} saves, {len(errors)} errors; save time p50 "
            f"{median(timings) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
        for error in errors[:5]:
            print("  error:", error)
        print(f"sandbox requests by status: {sandbox.requests_by_status()}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        sandbox.stop()


def _user(base, username, password, contact, deadline, timings, errors):
    from tests.contacts.admin_post import contact_post

    session = requests.Session()
    login = session.get(base + "/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    session.post(
        base + "/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
    )
    url = f"{base}/admin/contacts/contact/{contact.pk}/change/"
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        page = session.get(url)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if page.status_code != 200 or not match:
            errors.append(f"{username}: GET {page.status_code}")
            continue
        data = contact_post(
            contact,
            first_name=f"Load {round_}",
            email=contact.email,
            external_id=contact.external_id,
            phone=contact.phone,
            country=contact.country,
            csrfmiddlewaretoken=match.group(1),
        )
        started = time.perf_counter()
        response = session.post(url, data=data, allow_redirects=False)
        elapsed = time.perf_counter() - started
        if response.status_code != 302:
            errors.append(f"{username}: POST {response.status_code}")
        else:
            timings.append(elapsed)


def _wait(url):
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    sys.exit(main())
