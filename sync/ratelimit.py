"""A rate limit per destination shared through the database by every worker process.

Each request reserves the next free slot in one short transaction (a row lock on PostgreSQL,
the write lock on SQLite), then sleeps until that slot outside the transaction. Slots are
spaced by 1/rate seconds plus a small margin, so no window of one second ever holds more than
the destination's rate, even when requests reach the platform with some jitter. Worker clocks
are assumed to agree (NTP), as slots are wall-clock times.
"""

import time

from django.db import transaction

from sync.models import RateLimitSlot

SAFETY_MARGIN = 1.03  # spacing 3 % wider than the nominal rate absorbs network jitter


class DatabaseRateLimiter:
    def __init__(self, destination_id: int, rate: float):
        self.destination_id = destination_id
        self.interval = SAFETY_MARGIN / rate if rate and rate > 0 else 0.0
        RateLimitSlot.objects.get_or_create(destination_id=destination_id)

    def acquire(self) -> None:
        """Block until this process may send one request."""
        slot = self._reserve()
        wait = slot - time.time()
        if wait > 0:
            time.sleep(wait)

    def defer(self, seconds: float) -> None:
        """No worker sends before `seconds` from now (the platform's Retry-After)."""
        until = time.time() + seconds
        with transaction.atomic():
            row = RateLimitSlot.objects.select_for_update().get(destination_id=self.destination_id)
            if row.next_at < until:
                row.next_at = until
                row.save(update_fields=["next_at"])

    def _reserve(self) -> float:
        with transaction.atomic():
            row = RateLimitSlot.objects.select_for_update().get(destination_id=self.destination_id)
            slot = max(time.time(), row.next_at)
            row.next_at = slot + self.interval
            row.save(update_fields=["next_at"])
        return slot
