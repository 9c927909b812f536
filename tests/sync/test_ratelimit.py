"""The shared rate limit (sync/ratelimit.py) and a platform's Retry-After: a worker waiting out
one Retry-After still sees another that a second worker records meanwhile. Each limiter here
is one worker's view of the destination's limit; the database is the real one."""

import threading
import time

import pytest
from django.db import connection

from sync.ratelimit import DatabaseRateLimiter
from tests.conftest import platform_with

RATE = 50.0


def _acquire_in_thread(limiter, acquired: list) -> threading.Thread:
    """`limiter.acquire()` on a thread of its own (a worker waiting for its next slot)."""

    def run():
        try:
            limiter.acquire()
            acquired.append(time.time())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_worker_waiting_out_a_retry_after_waits_for_a_later_one_too(sandbox_destination):
    destination = sandbox_destination(platform_with(), rate_limit=RATE)
    mine = DatabaseRateLimiter(destination.pk, RATE)
    other = DatabaseRateLimiter(destination.pk, RATE)
    mine.defer(0.4)  # this worker's 429
    acquired: list[float] = []
    waiting = _acquire_in_thread(mine, acquired)  # asks for its next slot at once
    time.sleep(0.1)
    later_until = time.time() + 0.6
    other.defer(0.6)  # another worker's 429, while this one waits
    waiting.join(timeout=5)
    assert acquired, "the waiting worker got no slot"
    # a slot promised before the second Retry-After would come at the end of the first (0.4 s)
    assert acquired[0] >= later_until - 0.01, acquired[0] - later_until
