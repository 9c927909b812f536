"""Load: N admin users saving contacts at once for a while, in the production shape (issue #15,
target 7: p95 <= 300 ms, 0 errors, with 20 users for 60 s).

    bin/with-postgres .venv/bin/python bench/load_admin.py [--users 20 --seconds 60 --think 0]
    .venv/bin/python bench/load_admin.py                   # the same on SQLite

The shape: `DJANGO_ENV=production` (so `SYNC_ON_SAVE_MODE=queued`, its default there, and
static files from whitenoise after `collectstatic`), gunicorn as README "Production" starts it
(`--workers 4 --timeout 120`), and beside it what `make run` starts (bin/run): one
`sync_worker`, one `sync_worker --interactive-only --interval 0.2`, the `sync_scheduler` and
the sandbox's four platforms (a destination each). Plain http on loopback stands in for the
TLS a proxy would terminate: the client sends the secure cookies anyway.

Each user logs in, then loops: open their contact's page, save it with a new first name
(then wait `--think` seconds, 0 by default: back to back, the worst case).
A 1-user baseline runs first, in the same run. Printed per phase: saves, errors (a login or
page that failed, any answer that is not 2xx/3xx, a timeout, a save whose value the next page
or the database does not show), p50/p95/max of the save POST. Then whether the queued pushes
reached the platforms: each saved contact's last value on every platform, the push tasks'
time from queued to done, and how long after the last save the last platform had it.
"""

import argparse
import json
import math
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter

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

TIMEOUT = 30  # seconds a request may take before it counts as an error
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FIRST_NAME = re.compile(r'<input[^>]*name="first_name"[^>]*>')
VALUE = re.compile(r'value="([^"]*)"')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline-seconds", type=float, default=15)
    parser.add_argument("--sync-timeout", type=float, default=300, help="seconds to wait")
    parser.add_argument(
        "--think",
        type=float,
        default=0,
        help="seconds each user waits after a save before opening the page again (default 0: "
        "every user saves back to back, the worst case)",
    )
    args = parser.parse_args()
    setup_django(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        SYNC_ALLOW_LOOPBACK="true",
        SYNC_ON_SAVE_MODE="queued",
        LOG_LEVEL="WARNING",
    )
    env = {**os.environ, **sandbox_credentials_env()}
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import connectors

    assert settings.IS_PRODUCTION and settings.SYNC_ON_SAVE_MODE == "queued"
    call_command("collectstatic", "--noinput", verbosity=0)
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    sandbox = SandboxProcess(rate_limits=False)
    destinations = [
        make_destination(platform, sandbox.url, rate_limit=1000)
        for platform in connectors.CONNECTORS
    ]
    seed_demo_contacts(args.users + 1)
    password = "load-test-pass-123"
    users = [f"user{i}" for i in range(args.users + 1)]
    for username in users:
        User.objects.create_superuser(username, f"{username}@example.com", password)
    contacts = list(Contact.objects.order_by("pk"))
    port = free_port()
    manage = [sys.executable, str(ROOT / "manage.py")]
    commands = [
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "--workers", "4", "--timeout", "120"]
        + ["--bind", f"127.0.0.1:{port}"],
        [*manage, "sync_worker", "--no-reload"],
        [*manage, "sync_worker", "--no-reload", "--interactive-only", "--interval", "0.2"],
        [*manage, "sync_scheduler"],
    ]
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in commands
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/admin/login/")
        print(
            f"{database}, gunicorn 4 workers, sync_worker + sync_worker --interactive-only, "
            f"scheduler, {len(destinations)} destinations ({', '.join(connectors.CONNECTORS)}), "
            f"SYNC_ON_SAVE_MODE={settings.SYNC_ON_SAVE_MODE}, think time {args.think:g} s; "
            f"load average {_load()}"
        )
        # the baseline's user and contact are its own (the last), apart from the load's
        cpu = _Cpu(procs)
        baseline = _phase(
            base, [(users[-1], contacts[-1])], password, args.baseline_seconds, args.think
        )
        _print_phase("1 user (baseline)", args.baseline_seconds, baseline, cpu.since())
        pairs = list(zip(users[: args.users], contacts[: args.users], strict=True))
        load = _phase(base, pairs, password, args.seconds, args.think)
        _print_phase(f"{args.users} users", args.seconds, load, cpu.since())
        _print_sync(sandbox, destinations, {**baseline["last"], **load["last"]}, load, args)
        print(f"sandbox requests by status: {sandbox.requests_by_status()}")
        print(f"load average at the end: {_load()}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        sandbox.stop()


def _phase(base, pairs, password, seconds, think) -> dict:
    """Run one user thread per (username, contact) for `seconds`; gather their figures."""
    result = {"timings": [], "pages": [], "errors": [], "last": {}, "started": time.time()}
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=_user, args=(base, username, password, contact, deadline, think, result)
        )
        for username, contact in pairs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["ended"] = time.time()
    _check_persisted(result)
    return result


def _user(base, username, password, contact, deadline, think, result):
    """One person: log in, then open the contact's page and save it, until the deadline.

    Each save's value is checked on the next page; the last one in the database afterwards."""
    from tests.contacts.admin_post import contact_post

    errors = result["errors"]
    session = _Browser()
    try:
        login = _get(session, base + "/admin/login/")
        session.headers["Referer"] = base + "/admin/login/"
        answer = session.post(
            base + "/admin/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": TOKEN.search(login.text).group(1),
                "next": "/admin/",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if answer.status_code != 302 or "sessionid" not in session.cookies:
            raise _Failed(f"login POST {answer.status_code}, no session")
    except (_Failed, requests.RequestException, AttributeError) as err:
        errors.append(f"{username}: login: {err!r}")
        return
    url = f"{base}/admin/contacts/contact/{contact.pk}/change/"
    saved, round_ = None, 0
    while time.monotonic() < deadline:
        round_ += 1
        try:
            started = time.perf_counter()
            page = _get(session, url)
            result["pages"].append(time.perf_counter() - started)
            token = TOKEN.search(page.text)
            shown = FIRST_NAME.search(page.text)
            shown = VALUE.search(shown.group(0)).group(1) if shown else None
            if not token or shown is None:
                raise _Failed("change page without its form")
            if saved is not None and shown != saved:
                errors.append(f"{username}: saved {saved!r}, the next page shows {shown!r}")
            value = f"Load {username} {round_}"
            data = contact_post(
                contact,
                first_name=value,
                email=contact.email,
                external_id=contact.external_id,
                phone=contact.phone,
                country=contact.country,
                csrfmiddlewaretoken=token.group(1),
            )
            started = time.perf_counter()
            answer = session.post(url, data=data, allow_redirects=False, timeout=TIMEOUT)
            elapsed = time.perf_counter() - started
            if answer.status_code != 302:  # 200 is the form again, with its errors
                raise _Failed(f"save POST {answer.status_code}")
            result["timings"].append(elapsed)
            saved = value
            result["last"][contact.pk] = value
            result["last_save"] = time.time()
            time.sleep(think)
        except (_Failed, requests.RequestException) as err:
            errors.append(f"{username}: {err!r}")


class _Failed(Exception):
    pass


class _Browser(requests.Session):
    """A session that sends the secure cookies over loopback http, as a browser sends them
    over the TLS that a proxy in front of gunicorn terminates."""

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False
        return response


def _get(session, url):
    page = session.get(url, timeout=TIMEOUT)
    if not 200 <= page.status_code < 400:
        raise _Failed(f"GET {url} {page.status_code}")
    return page


def _check_persisted(result) -> None:
    from contacts.models import Contact

    stored = dict(Contact.objects.filter(pk__in=result["last"]).values_list("pk", "first_name"))
    for pk, value in result["last"].items():
        if stored.get(pk) != value:
            result["errors"].append(f"contact {pk}: saved {value!r}, stored {stored.get(pk)!r}")


def _print_phase(label, seconds, result, cpu) -> None:
    timings = sorted(result["timings"])
    p95 = _p95(timings) if timings else 0
    print(
        f"{label} for {seconds:.0f} s: {len(timings)} saves, {len(result['errors'])} errors; "
        f"save time p50 {median(timings) * 1000 if timings else 0:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {(timings[-1] if timings else 0) * 1000:.0f} ms; "
        f"load average {_load()}"
    )
    pages = sorted(result["pages"])
    if pages:
        print(
            f"  contact page GET (between saves): p50 {median(pages) * 1000:.0f} ms, "
            f"p95 {_p95(pages) * 1000:.0f} ms, max {pages[-1] * 1000:.0f} ms"
        )
    if timings:
        web, workers = (seconds_used / len(timings) * 1000 for seconds_used in cpu)
        print(
            f"  CPU time per save (with its page GET): gunicorn {web:.0f} ms, sync workers "
            f"{workers:.0f} ms (the machine has 2 cores x {seconds:.0f} s)"
        )
    for error in result["errors"][:5]:
        print("  error:", error)


def _print_sync(sandbox, destinations, last_values, load, args) -> None:
    """Wait until every saved contact's last value is on every platform (or the timeout);
    print how many got there, when, and the push tasks' queued-to-done times."""
    from django_tasks_db.models import DBTaskResult

    waited = time.monotonic()
    pending = {(pk, d.platform) for pk in last_values for d in destinations}
    while pending and time.monotonic() - waited < args.sync_timeout:
        stores = {p: json.dumps(sandbox.control(f"store/{p}")) for p in {p for _, p in pending}}
        pending = {
            (pk, p) for pk, p in pending if json.dumps(last_values[pk])[1:-1] not in stores[p]
        }
        if pending:
            time.sleep(0.5)
    lag = time.time() - load.get("last_save", load["ended"])
    missing = {pk for pk, _ in pending}
    everywhere = len(last_values) - len(missing)
    print(
        f"{everywhere} of {len(last_values)} saved contacts have their last value on all "
        f"{len(destinations)} platforms "
        + (
            f"{lag:.1f} s after the last save"
            if not pending
            else f"after waiting {args.sync_timeout:.0f} s; missing: {sorted(pending)[:8]}"
        )
    )
    tasks = DBTaskResult.objects.filter(
        enqueued_at__gte=_aware(load["started"]), enqueued_at__lte=_aware(load["ended"])
    )
    lags = sorted(
        (finished - enqueued).total_seconds()
        for enqueued, finished in tasks.values_list("enqueued_at", "finished_at")
        if finished
    )
    unfinished = Counter(tasks.filter(finished_at__isnull=True).values_list("status", flat=True))
    if unfinished:  # a later task already pushed the contact's last version: these find it sent
        print(f"  push tasks not finished yet: {dict(unfinished)}")
    if lags:
        p95 = _p95(lags)
        print(
            f"push tasks queued during the {args.users}-user load: {tasks.count()}, "
            f"{len(lags)} done; queued to done p50 {median(lags):.2f} s, p95 {p95:.2f} s, "
            f"max {lags[-1]:.2f} s"
        )


class _Cpu:
    """CPU seconds used by gunicorn's workers and by the sync workers, read from /proc: the
    cost of the work itself, which a machine shared with other runs does not inflate the
    way it inflates latency."""

    def __init__(self, procs):
        self.gunicorn, self.workers = procs[0].pid, [p.pid for p in procs[1:3]]
        self.last = self._read()

    def since(self) -> tuple[float, float]:
        now = self._read()
        used = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        return used

    def _read(self) -> tuple[float, float]:
        path = f"/proc/{self.gunicorn}/task/{self.gunicorn}/children"
        with open(path) as children:
            web = [int(pid) for pid in children.read().split()]
        return sum(map(_cpu_seconds, web)), sum(map(_cpu_seconds, self.workers))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p95(ordered):
    """The 95th percentile of sorted values (nearest rank)."""
    return ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]


def _aware(timestamp):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _wait(url):
    for _ in range(300):
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    sys.exit(main())
