"""Shared set-up for the benchmark scripts: a database, the sandbox, destinations.

Each script runs on a fresh database: the one in DATABASE_URL when it is set (run a script
under `bin/with-postgres` for PostgreSQL), else a temporary SQLite file.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(**settings_env) -> None:
    """Point Django at the benchmark database, migrate it, and set it up."""
    if not os.environ.get("DATABASE_URL"):
        workdir = tempfile.mkdtemp(prefix="bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    for name, value in settings_env.items():
        os.environ[name] = str(value)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if os.environ["DATABASE_URL"].startswith("postgres"):
        call_command("flush", "--noinput", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SandboxProcess:
    """`manage.py sandbox` in its own process, as in production-like runs."""

    def __init__(self, *, rate_limits=True):
        self.rate_limits = rate_limits
        self.port = free_port()
        args = [sys.executable, str(ROOT / "manage.py"), "sandbox", "--port", str(self.port)]
        if not rate_limits:
            args.append("--no-rate-limits")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                requests.get(f"{self.url}/_sandbox/stats", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    def control(self, path, payload=None):
        if payload is None:
            return requests.get(f"{self.url}/_sandbox/{path}", timeout=30).json()
        return requests.post(f"{self.url}/_sandbox/{path}", json=payload, timeout=30).json()

    def reset(self) -> None:
        """Empty the platforms' stores. The sandbox's reset also puts each platform's own rate
        limit back: started without them, they are lifted again, else a benchmark measures
        the vendors' 429s (call after setup_django())."""
        self.control("reset", {})
        if not self.rate_limits:
            from sync.connectors import CONNECTORS

            for platform in CONNECTORS:
                self.control("rate-limit", {"platform": platform, "limit": None})

    def requests_by_status(self, platform=None) -> dict:
        counts = self.control("stats")["requests"]
        if platform:
            return counts.get(platform, {})
        merged: dict = {}
        for per_platform in counts.values():
            for status, n in per_platform.items():
                merged[status] = merged.get(status, 0) + n
        return merged

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def sandbox_credentials_env() -> dict:
    from sync.sandbox import sandbox_environment

    values = sandbox_environment()
    os.environ.update(values)
    return values


def make_destination(platform: str, sandbox_url: str, **fields):
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    return Destination.objects.create(
        **{**sandbox_destination_fields(platform, sandbox_url), **fields}
    )


def platforms_with(*, bulk: bool | None = None, delete: bool | None = None) -> list[str]:
    """The registered platforms with these capabilities, as the tests choose them
    (tests/conftest.py: highest default rate limit first). Call after setup_django()."""
    from tests.conftest import platforms_with as registered

    return registered(bulk=bulk, delete=delete)


def platform_with(*, bulk: bool | None = None, delete: bool | None = None) -> str:
    """The first of `platforms_with(...)`; LookupError when no platform has them."""
    from tests.conftest import platform_with as registered

    return registered(bulk=bulk, delete=delete)


def connector_class(platform: str):
    """The platform's connector class (its label, default rate limit, batch size)."""
    from sync import connectors

    return connectors.get_class(platform)


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
