"""Our own short database statements, retried while the database is busy or away.

SQLite answers "database is locked" once another connection has held the write lock longer
than the busy timeout (a long import, say); PostgreSQL drops every connection when it
restarts, and refuses new ones until it is back. Neither is a bug of ours, and neither must
end a worker or the scheduler: `with_database_retry(func, ...)` calls `func` again with
backoff, up to ATTEMPTS times, then raises the last error.

Only a call outside any transaction is retried: inside an outer `atomic` the error has
already spoiled the transaction, and only its owner can start it again.

A retried write must be safe to repeat. Ours are: claims and outcomes are UPDATEs of the
same values. One case repeats a little: a COMMIT whose answer was lost with the connection
writes the attempt log and the run's counts a second time.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 8
BASE_DELAY, MAX_DELAY = 0.2, 5.0  # seconds; about 20 s of waiting in all, besides busy timeouts
# SQLSTATE classes and codes (PostgreSQL's appendix A): 08 connection exception, 57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
PG_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def is_database_locked(err: BaseException) -> bool:
    """SQLite's "database is locked" (or "... table is locked")."""
    return isinstance(err, OperationalError) and "is locked" in str(err).lower()


def is_connection_lost(err: BaseException, using: str = DEFAULT_DB_ALIAS) -> bool:
    """The database went away: the connection was dropped, or could not be made.

    Told by the error, not by the connection: Django may already have reconnected while
    cleaning up after it (a rollback that fails closes the connection, and leaving the
    transaction turns autocommit back on, which connects again)."""
    if isinstance(err, InterfaceError):  # psycopg2: "connection already closed"
        return True
    if not isinstance(err, OperationalError):
        return False
    if connections[using].vendor == "sqlite":  # its OperationalError also means a bug of ours
        return False
    # PostgreSQL: no SQLSTATE at all (the client lost the server), or one of its codes for a
    # connection exception, a shutdown or "the database system is starting up"
    code = getattr(err.__cause__, "pgcode", None) or ""
    return code == "" or code.startswith(PG_CONNECTION_LOST)


def is_transient(err: BaseException, using: str = DEFAULT_DB_ALIAS) -> bool:
    return is_database_locked(err) or is_connection_lost(err, using)


def backoff(attempt: int) -> float:
    """Seconds to wait before try number `attempt + 1` (jittered, so workers spread out)."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def drop_broken_connection(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close a connection the database dropped, so the next query opens a fresh one."""
    try:
        connections[using].close()
    except Exception:  # closing a dead connection may fail too; it is gone either way
        connections[using].connection = None


def with_database_retry(
    func: Callable[..., T], *args, using: str = DEFAULT_DB_ALIAS, attempts: int = ATTEMPTS, **kwargs
) -> T:
    """`func(*args, **kwargs)`, called again while the database is locked or away.

    Raises the last OperationalError/InterfaceError after `attempts` tries, any other error at
    once, and a transient one at once too when called inside a transaction."""
    for attempt in range(1, attempts + 1):
        try:
            return func(*args, **kwargs)
        except (OperationalError, InterfaceError) as err:
            if connections[using].in_atomic_block or not is_transient(err, using):
                raise
            if is_connection_lost(err, using):
                drop_broken_connection(using)
            if attempt == attempts:
                logger.error("%s failed %d times, giving up: %s", _name(func), attempts, err)
                raise
            delay = backoff(attempt)
            logger.warning(
                "%s failed (%s), retrying in %.1f s (%d/%d)",
                _name(func),
                _first_line(err),
                delay,
                attempt,
                attempts,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def wait_for_database(*, using: str = DEFAULT_DB_ALIAS, timeout: float = 60.0) -> bool:
    """Block until a connection answers (at most `timeout` seconds); True when it does.

    A task that gave up on the database waits here before returning, so that the worker's
    own bookkeeping, which retries for only a fraction of a second, finds it back."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            conn = connections[using]
            if conn.connection is not None and not conn.is_usable():
                drop_broken_connection(using)
            conn.ensure_connection()
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except (OperationalError, InterfaceError):
            drop_broken_connection(using)
            delay = backoff(attempt)
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)


def _name(func) -> str:
    return getattr(func, "__qualname__", repr(func))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
