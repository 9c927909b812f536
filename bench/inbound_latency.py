"""Inbound latency: from a sandbox unsubscribe to our contact showing it, per platform, by the
webhook path and by the poll path.

    .venv/bin/python bench/inbound_latency.py [--trials 5]
    bin/with-postgres .venv/bin/python bench/inbound_latency.py

- Webhook path: gunicorn serves the app on loopback (SYNC_PUBLIC_URL points at it) and one
  `sync_worker` (default 1 s idle interval, as `make run`'s) applies stored events. Each
  trial asks the sandbox to unsubscribe one contact; the sandbox delivers the platform's real
  signed notification (iVvy: an SNS envelope, after registering and confirming the
  subscription) and the clock stops when our contact's email status says so.
- Poll path: a second sandbox with no webhook registered anywhere. Each trial unsubscribes
  one contact there, then runs `sync.polling.destination_poll` (what the scheduler's queued
  task runs) and stops the clock when our contact shows it. The scheduler's interval
  (SYNC_POLL_INTERVAL_MINUTES, Loops daily) comes on top: half of it on average, all of it
  at worst.

Sandbox rate limits on (the vendors' own); every poll request goes through the destination's
shared rate limiter at the platform's default rate.
"""

import argparse
import os
import subprocess
import sys
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

# What the sandbox calls an unsubscribe on each platform (its `/_sandbox/notify` action).
# The sandbox's `/_sandbox/notify` action for an unsubscribe: "unsubscribe" everywhere, but
# Cendyn's is a channel blacklisting, which no Cendyn call lets us poll; its unsubscribe link
# (a delivery with status unsubscribed) is what its deliveries poll sees.
UNSUBSCRIBE = "unsubscribe"
POLLED_UNSUBSCRIBE = {"cendyn": "unsubscribe_link"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    setup_django(SYNC_PUBLIC_URL=base, ALLOWED_HOSTS="127.0.0.1", SYNC_ON_SAVE_MODE="queued")
    env = {**os.environ, **sandbox_credentials_env()}
    from sync import connectors

    hooked, unhooked = SandboxProcess(), SandboxProcess()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "sync_worker", "--no-reload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(base + "/admin/login/")
        database = os.environ["DATABASE_URL"].split(":")[0]
        print(f"{args.trials} unsubscribes per platform and path; {database}")
        header = ("platform", "webhook median/max", "poll run median/max", "requests/poll")
        print(f"{header[0]:10} {header[1]:>20} {header[2]:>22} {header[3]:>14}")
        for platform in connectors.CONNECTORS:
            webhook = _webhook_path(platform, hooked, args.trials)
            poll, calls = _poll_path(platform, unhooked, args.trials)
            print(f"{platform:10} {_ms(webhook):>20} {_ms(poll):>22} {median(calls):>14g}")
        print(
            "poll path = the poll run alone; the scheduler's interval adds to it (half of "
            "SYNC_POLL_INTERVAL_MINUTES on average, all of it at worst; Loops: a day)."
        )
    finally:
        for proc in (worker, server):
            proc.terminate()
            proc.wait(timeout=30)
        hooked.stop()
        unhooked.stop()


def _ms(values):
    return f"{median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"


def _contacts(destination, n, tag):
    """n contacts pushed to the destination (held there, with a remote id)."""
    from contacts.models import Contact
    from sync.engine import PushContext, contact_push

    contacts = []
    for i in range(n):
        contact = Contact.objects.create(
            first_name=f"Lat{i}", last_name=tag, email=f"lat-{tag}-{i}@example.com"
        )
        for _ in range(5):  # a 429 from the sandbox's own window: the push waits and goes again
            state = contact_push(
                contact_id=contact.pk,
                destination=destination,
                context=PushContext(trigger="action"),
            )
            if state.status == "synced":
                break
            time.sleep(1)
        assert state.status == "synced", state.last_error
        contacts.append(contact)
    return contacts


def _register_webhook(platform, sandbox, destination):
    """Register our inbound URL as a person (or, for iVvy, the API) would."""
    from sync import inbound
    from sync.sandbox import emulator_class
    from sync.selectors import destination_inbound_url

    url = destination_inbound_url(destination)
    cls = destination.connector_class
    if cls.inbound.registers_by_api:
        done, message = inbound.destination_inbound_register(destination=destination)
        assert done, message
        answers = sandbox.control(
            "notify", {"platform": platform, "action": "subscription_confirmation"}
        )
        assert [a["status"] for a in answers] == [200], answers
        _until(lambda: _confirmed(destination), 30)
        return
    emulator = emulator_class(cls)
    body = {"platform": platform, "url": url}
    if "webhook_password" in emulator.account_credentials:  # an export with a login (Yespo)
        body |= {
            "login": emulator.account_settings["webhook_login"],
            "password": emulator.account_credentials["webhook_password"],
        }
    sandbox.control("webhook", body)


def _confirmed(destination):
    destination.refresh_from_db()
    return bool((destination.inbound_state or {}).get("confirmed_at"))


def _webhook_path(platform, sandbox, trials):
    from contacts.models import Contact

    destination = make_destination(
        platform, sandbox.url, name=f"{platform} hooked", push_on_save=False
    )
    contacts = _contacts(destination, trials, f"{platform}-w")
    _register_webhook(platform, sandbox, destination)
    times = []
    for contact in contacts:
        started = time.perf_counter()
        answers = sandbox.control(
            "notify",
            {"platform": platform, "action": UNSUBSCRIBE, "external_id": contact.external_id},
        )
        assert all(a["status"] == 200 for a in answers), answers
        _until(lambda c=contact: Contact.objects.get(pk=c.pk).email_status == "unsubscribed", 60)
        times.append(time.perf_counter() - started)
    return times


def _poll_path(platform, sandbox, trials):
    from contacts.models import Contact
    from sync import polling

    destination = make_destination(
        platform, sandbox.url, name=f"{platform} polled", push_on_save=False
    )
    contacts = _contacts(destination, trials, f"{platform}-p")
    polling.destination_poll(destination=destination)  # the cursor, as a running scheduler has it
    times, calls = [], []
    for contact in contacts:
        started = time.perf_counter()
        action = POLLED_UNSUBSCRIBE.get(platform, UNSUBSCRIBE)
        answers = sandbox.control(
            "notify",
            {"platform": platform, "action": action, "external_id": contact.external_id},
        )
        assert answers == [], answers  # nothing registered: nothing delivered
        outcome = polling.destination_poll(destination=destination)
        assert not outcome.error, outcome.error
        assert Contact.objects.get(pk=contact.pk).email_status == "unsubscribed", outcome
        times.append(time.perf_counter() - started)
        calls.append(outcome.requests)
    return times, calls


def _until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the change did not show in time")
        time.sleep(0.01)


def _wait_http(url):
    for _ in range(200):
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    main()
