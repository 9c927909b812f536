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


def postgres_restart(*, down_seconds: float = 3.0, timeout: float = 60) -> None:
    """Stop the throwaway cluster of bin/with-postgres (fast mode: every connection is
    dropped), keep it down for `down_seconds`, start it again and wait until it accepts
    connections. Skips the test elsewhere."""
    import time

    import pytest

    names = ("PG_BIN", "PGDATA", "PG_LOG", "PG_OPTIONS", "PG_OWNER")
    if not all(os.environ.get(name) for name in names):
        pytest.skip(f"needs the cluster of bin/with-postgres ({', '.join(names)})")
    pg_ctl = "{}/pg_ctl -D {} -l {} -w".format(
        os.environ["PG_BIN"], os.environ["PGDATA"], os.environ["PG_LOG"]
    )
    _as_cluster_owner(f"{pg_ctl} -m fast stop", timeout)
    time.sleep(down_seconds)
    _as_cluster_owner(f"{pg_ctl} start -o '{os.environ['PG_OPTIONS']}'", timeout)


def _as_cluster_owner(command: str, timeout: float) -> None:
    owner = os.environ["PG_OWNER"]
    if os.getuid() == 0 and owner != "root":
        argv = ["su", owner, "-s", "/bin/bash", "-c", command]
    else:
        argv = ["bash", "-c", command]
    subprocess.run(argv, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
