"""A rate limit per destination shared through the database by every worker process, with
tighter limits for the classes of calls a platform limits on their own (Yespo's contact search:
50 requests/s beside 200 for everything else; the connector declares its `call_classes`).

Each request reserves the next free slot in one short transaction (a row lock on PostgreSQL,
the write lock on SQLite), then sleeps until that slot outside the transaction. Slots are
spaced so that any window of one second holds a few requests fewer than the destination's
rate (`spacing`): a request that reaches the platform late (network jitter, a loaded machine
delaying a send after its slot) lands in a window that has room for it. A call of a
class takes a slot of the destination and one of its class (its own row), and waits for the
later of the two. Worker clocks are assumed to agree (NTP), as slots are wall-clock times. Each
transaction is retried while the database is locked or away (sync.dbretry): a request waits
rather than fails.

A platform's Retry-After (`defer`) moves the destination's next free slot past it, for every
worker; but slots a process was given already are its own, and the database cannot take them
back. So a slot is given at most a moment before its time (PROMISE_AHEAD and one interval):
a process that finds the next free one further away (another worker's Retry-After being
waited out) reserves nothing, is told when to ask again (NotYet), and then sees any
Retry-After recorded meanwhile. Promised a second ahead while waiting out one Retry-After, a
slot would be sent inside a later one.

Fairness: a bulk chunk asks `wait_ahead` before each contact and, when it would wait while a
worker has something better to do (another destination's chunk, or an interactive push, this
destination's included), gives its place back instead of reserving (sync.engine). So bulk
work never holds more than the one slot block each worker has in hand, and an interactive
push gets the next free slot: at most a block per worker ahead of it.
"""

import time

from django.db import transaction

from sync.dbretry import with_database_retry
from sync.models import CallClassSlot, RateLimitSlot

# Requests of each one-second window left unused for requests that arrive late: 3 % of the
# rate, and at least LATE_SPARE requests where that costs no more than 5 % of it. One spare
# request (50/s at 3 %) is not enough: two workers each delaying one request past its slot
# made 51 in a second.
SAFETY_MARGIN, LATE_SPARE, MAX_SPARE_SHARE = 0.03, 2, 0.05
RESERVE_SECONDS, MAX_BLOCK = 0.1, 50
# A block's first slot is at most this far ahead, plus one interval, when it is reserved: a
# worker's next slot always is (sync/inflight.py asks RESERVE_AHEAD = 0.05 s before its last
# one), and the block's last slot is then at most about 0.15 s ahead at 10 to 1,000
# requests/s: what a Retry-After recorded just after the reservation can still see sent
# (tests/sync/drills.py allows 0.15 s of requests in flight).
PROMISE_AHEAD = 0.05


class NotYet(Exception):  # noqa: N818 (a reply, not a failure)
    """Nothing reserved: the next free slot is further away than a slot is promised (see
    PROMISE_AHEAD). Ask again at `at` (wall clock)."""

    def __init__(self, at: float):
        super().__init__(at)
        self.at = at


def spacing(rate: float | None) -> float:
    """Seconds between two slots at `rate` requests/s (0 when unlimited): 1 / (rate - spare),
    so that a one-second window holds at most rate - spare slots sent on time."""
    if not rate or rate <= 0:
        return 0.0
    spare = max(SAFETY_MARGIN * rate, min(LATE_SPARE, MAX_SPARE_SHARE * rate))
    return 1 / (rate - spare)


class _Slots:
    """Slots of one row (a destination's, or one call class of it), reserved in blocks."""

    def __init__(self, rows, rate: float):
        self.rows = rows  # a queryset of exactly one row with `next_at`
        self.interval = spacing(rate)
        # Slots reserved per transaction: one at ordinary rates; at high rates a block worth
        # at most RESERVE_SECONDS, so the database is not asked once per request.
        self.block = (
            max(1, min(MAX_BLOCK, int(RESERVE_SECONDS / self.interval)))
            if self.interval
            else MAX_BLOCK
        )
        self._slots: list[float] = []

    def next_slot(self) -> float:
        """The next slot of the block this process holds, or of a new one; NotYet when the
        next free slot is too far ahead to be promised."""
        if not self._slots:
            self._slots = with_database_retry(self._reserve)
        return self._slots.pop(0)

    def put_back(self, slot: float) -> None:
        """A slot taken but not used: the next `next_slot` gives it again."""
        self._slots.insert(0, slot)

    def held(self) -> float | None:
        """The next slot this process holds already, or None."""
        return self._slots[0] if self._slots else None

    def forget(self) -> None:
        self._slots = []

    def _reserve(self) -> list[float]:
        with transaction.atomic():
            row = self.rows.select_for_update().get()
            now = time.time()
            first = max(now, row.next_at)
            horizon = PROMISE_AHEAD + self.interval
            if first - now > horizon:
                raise NotYet(first - horizon)  # nothing written: the row stays as it is
            row.next_at = first + self.block * self.interval
            row.save(update_fields=["next_at"])
        return [first + i * self.interval for i in range(self.block)]


class DatabaseRateLimiter:
    def __init__(self, destination_id: int, rate: float, classes: dict[str, float] | None = None):
        self.destination_id = destination_id
        with_database_retry(RateLimitSlot.objects.get_or_create, destination_id=destination_id)
        self.slots = _Slots(RateLimitSlot.objects.filter(destination_id=destination_id), rate)
        self.interval = self.slots.interval
        self.classes: dict[str, _Slots] = {}
        for name, class_rate in (classes or {}).items():
            with_database_retry(
                CallClassSlot.objects.get_or_create, destination_id=destination_id, call_class=name
            )
            rows = CallClassSlot.objects.filter(destination_id=destination_id, call_class=name)
            self.classes[name] = _Slots(rows, min(class_rate, rate) if rate else class_rate)

    def reserve(self, call_class: str | None = None) -> float:
        """Reserve the next slot for one request (of this class, when named; a class the
        limiter was not given counts as an ordinary call) and return its wall-clock time:
        the caller sends at that time, not before (sync/inflight.py hands it to a lane).
        NotYet, with nothing reserved, when either slot is too far ahead to be promised."""
        slot = self.slots.next_slot()
        if call_class in self.classes:
            try:
                slot = max(slot, self.classes[call_class].next_slot())
            except NotYet:
                self.slots.put_back(slot)
                raise
        return slot

    def acquire(self, call_class: str | None = None) -> None:
        """Block until this process may send one request (see `reserve`)."""
        while True:
            try:
                slot = self.reserve(call_class)
                break
            except NotYet as later:
                time.sleep(max(0.0, later.at - time.time()))
        wait = slot - time.time()
        if wait > 0:
            time.sleep(wait)

    def wait_ahead(self) -> float:
        """Seconds this process would wait in `acquire` now (0 when a slot is free): a slot it
        holds already, else the destination's next free one. A read: nothing is reserved, so
        a bulk chunk can give its place back instead of waiting (sync.engine)."""
        held = self.slots.held()
        if held is not None:
            return max(0.0, held - time.time())
        next_at = with_database_retry(
            RateLimitSlot.objects.filter(destination_id=self.destination_id)
            .values_list("next_at", flat=True)
            .first
        )
        return max(0.0, (next_at or 0.0) - time.time())

    def defer(self, seconds: float) -> None:
        """No worker sends before `seconds` from now (the platform's Retry-After)."""
        self.slots.forget()
        for slots in self.classes.values():
            slots.forget()
        with_database_retry(self._push_back, time.time() + seconds)

    def _push_back(self, until: float) -> None:
        with transaction.atomic():
            row = RateLimitSlot.objects.select_for_update().get(destination_id=self.destination_id)
            if row.next_at < until:
                row.next_at = until
                row.save(update_fields=["next_at"])
