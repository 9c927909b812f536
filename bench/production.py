"""The production shape on this machine: gunicorn with static files served by whitenoise,
PostgreSQL, two db_worker processes and the sync scheduler, the sandbox standing in for the
platforms; pushes N contacts (default 2,000) through it and prints the figures.

    bin/with-postgres .venv/bin/python bench/production.py [--contacts 2000]
"""

import argparse
import os
import secrets
import subprocess
import sys
import time

import requests
from common import (
    ROOT,
    SandboxProcess,
    connector_class,
    free_port,
    make_destination,
    platform_with,
    sandbox_credentials_env,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument(
        "--platform",
        default="",
        help="a registered platform's slug (default: one pushed one contact per request)",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("run under bin/with-postgres: production runs on PostgreSQL")
    port = free_port()
    os.environ.update(
        {
            "DJANGO_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SYNC_ALLOW_LOOPBACK": "true",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    env = {**os.environ, **sandbox_credentials_env()}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from contacts.demo import seed_demo_contacts
    from sync.models import ContactSyncState, SyncStatus

    platform = args.platform or platform_with(bulk=False)
    label = connector_class(platform).label  # KeyError names an unknown slug
    sandbox = SandboxProcess(rate_limits=False)
    procs = [
        subprocess.Popen(
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
            stderr=subprocess.DEVNULL,
        ),
        *[
            subprocess.Popen(
                [*manage, "db_worker", "--no-reload", "--interval", "0.2"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ],
        subprocess.Popen(
            [*manage, "sync_scheduler"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        destination = make_destination(platform, sandbox.url, rate_limit=1000)
        seed_demo_contacts(args.contacts)
        _wait_http(f"http://127.0.0.1:{port}/admin/login/")
        static = requests.get(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=5)
        login = requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        print(
            f"gunicorn on 127.0.0.1:{port}: login page {login.status_code}, static file "
            f"{static.status_code} ({static.headers.get('Content-Type')}, whitenoise)"
        )
        started = time.perf_counter()
        subprocess.run(
            [*manage, "push_contacts", "--destination", destination.name, "--all", "--queue"],
            cwd=ROOT,
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        synced = ContactSyncState.objects.filter(status=SyncStatus.SYNCED).count()
        stored = len(sandbox.control(f"store/{platform}")[platform]["contacts"])
        print(
            f"{args.contacts:,} contacts pushed to {label} by 2 workers in "
            f"{seconds:.1f} s ({args.contacts / seconds:.0f}/s): {synced} synced, "
            f"{stored} records on the platform, requests by status "
            f"{sandbox.requests_by_status(platform)}"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        sandbox.stop()


def _wait_http(url):
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still booting
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    main()
