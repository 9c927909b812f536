"""Real worker processes for tests: they use the test database of this session."""

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


def process_env(**extra) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(*args, env=None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env or process_env(),
        **popen,
    )


def run_worker_until_idle(env=None, timeout=120) -> str:
    """Run `db_worker --batch`: it processes every queued task, then exits."""
    proc = manage(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def postgres_restart(timeout=60) -> None:
    """Restart the throwaway cluster of bin/with-postgres (fast mode: every connection is
    dropped), waiting until it accepts connections again. Skips the test elsewhere."""
    import pytest

    names = ("PG_BIN", "PGDATA", "PG_LOG", "PG_OWNER")
    if not all(os.environ.get(name) for name in names):
        pytest.skip("needs the cluster of bin/with-postgres (PG_BIN, PGDATA, PG_LOG, PG_OWNER)")
    pg_ctl = "{}/pg_ctl -D {} -l {} -m fast -w restart".format(
        os.environ["PG_BIN"], os.environ["PGDATA"], os.environ["PG_LOG"]
    )
    owner = os.environ["PG_OWNER"]
    if os.getuid() == 0 and owner != "root":
        command = ["su", owner, "-s", "/bin/bash", "-c", pg_ctl]
    else:
        command = ["bash", "-c", pg_ctl]
    subprocess.run(command, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
