"""Several requests in flight to one destination from one worker (issue #15, "In-flight
concurrency").

Pushed one contact per request, a chunk used to wait out each round trip before the next: at a
real platform's 100 ms a worker made 10 requests/s whatever the destination's rate limit
allowed. `InFlight` keeps up to `SYNC_REQUESTS_IN_FLIGHT` contacts' pushes going at once, each
on a lane: a thread with its own copy of the connector (its own exchange log and redactor),
all lanes sharing the destination's one HTTP session, hence one connection pool, sized to the
same bound (sync.connectors.base.outbound_session).

The worker's own thread (the caller's) alone talks to the database:
- the shared rate limit (sync/ratelimit.py): a lane about to send asks for a slot; the caller's
  thread reserves it and hands the slot's time back; the lane sleeps until then and sends.
  A slot is reserved only once the previous one this chunk was given is at most
  RESERVE_AHEAD away, so a worker holds no more slots ahead than it did sending one request
  at a time, and an interactive push still gets the next free one (see Fairness in README).
  While a Retry-After is waited out the limiter promises no slot yet (ratelimit.NotYet): the
  caller's thread asks again when told, so a Retry-After another worker records meanwhile
  holds these lanes too;
- a platform's Retry-After (`defer`), and every state, attempt-log and pause write (the
  engine writes the outcomes `wait` returns).
So lanes never open a database connection of their own, and nothing writes beside the
worker's transaction (SQLite's single writer, or a test's transaction).

`stop()` stops pending sends: a lane waiting for its slot, or sleeping until it, sends nothing
and its contact comes back as NOT_SENT; a request already on the wire completes. One contact
is never in flight twice: `submit` refuses a key it holds.
"""

import copy
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.connectors.base import BaseConnector
from sync.ratelimit import MAX_BLOCK, NotYet

RESERVE_AHEAD = 0.05  # seconds: the next slot is reserved when the last one is this close
# A lane that wakes more than LATE_AFTER seconds after its slot asks for another (at most
# MAX_LATE_SLOTS times): the limiter's spacing leaves a few requests of each second's window
# for late ones (sync/ratelimit.py `spacing`), and a late request eats into them.
LATE_AFTER, MAX_LATE_SLOTS = 0.01, 3
NOT_SENT = object()  # what `wait` returns for a job stopped before its request went out


class SendCancelled(BaseException):  # noqa: N818 (named for what happened, as CancelledError)
    """Raised inside a lane's request when the chunk stopped before the request was sent.
    A BaseException, as asyncio.CancelledError is, so that no `except Exception` on the way
    (the engine counts those as crashes) mistakes it for a failed push."""


@dataclass
class _Ticket:
    """A lane's request for one rate-limit slot, answered by the caller's thread."""

    call_class: str | None
    first_of_job: bool = False  # the job's first request: it may give way (see InFlight)
    answered: threading.Event = field(default_factory=threading.Event)
    slot: float | None = None  # None once answered: refused, the chunk is stopping


class LaneLimiter:
    """The rate limiter a lane's connector sees (`acquire`, `defer`, as BaseConnector.request
    calls them): slots come from the caller's thread; the wait for one ends early, with
    SendCancelled, when the chunk stops."""

    def __init__(self, flight: "InFlight"):
        self.flight = flight
        self.fresh = True  # no request of the lane's current job has asked for a slot yet

    def acquire(self, call_class: str | None = None) -> None:
        flight = self.flight
        first, self.fresh = self.fresh, False
        late = 0
        while True:
            self._sleep_until(flight.hold_until)  # a platform's Retry-After: nothing before it
            slot = flight.slot(call_class, first_of_job=first)
            first = False
            self._sleep_until(slot)
            if time.time() < flight.hold_until:
                continue  # a Retry-After came in while this lane waited: its slot is void
            if time.time() - slot > LATE_AFTER and late < MAX_LATE_SLOTS:
                # Woken late (a loaded machine): sent now, this request would crowd the ones
                # sent at their own slots into less than a second. Another slot, then.
                late += 1
                continue
            return

    def _sleep_until(self, moment: float) -> None:
        """Sleep until `moment` (wall clock); SendCancelled as soon as the flight stops."""
        wait = moment - time.time()
        if (wait > 0 and self.flight.stopping.wait(wait)) or self.flight.stopping.is_set():
            raise SendCancelled

    def defer(self, seconds: float) -> None:
        self.flight.hold_until = max(self.flight.hold_until, time.time() + seconds)
        self.flight.events.put(("defer", seconds))


class InFlight:
    """Up to `lanes` jobs at once, each `job(connector)` run on a lane with the lane's own
    copy of `connector`. Use as a context manager; on exit every job has finished (pending
    sends stopped) and the lanes are gone.

    On the caller's thread: `submit(key, job)` while `free`, then `wait()` for what finished,
    as (key, job's return value or NOT_SENT) pairs. A job's exception other than
    SendCancelled is raised again from `wait`.

    `give_way(queued)`, when given, is asked on the caller's thread when a job's first request
    asks for its slot, for every job but the first to ask, once the jobs admitted before it
    were given the slots due (so a chunk always moves on: asked in the same breath, the first
    job could be refused too, and the chunk queued again having sent nothing and reserved
    nothing, for a worker to take it again at once): `queued` is how many of this flight's
    requests wait for a slot ahead of it. True ends the flight (`gave_way`): the jobs that
    have no slot yet come back NOT_SENT, and no job starts; those under way finish."""

    def __init__(
        self,
        connector: BaseConnector,
        *,
        lanes: int,
        give_way: Callable[[int], bool] | None = None,
    ):
        self.limiter = connector.rate_limiter  # the destination's shared limit, or None
        self.give_way = give_way
        self.gave_way = False
        self._jobs_admitted = 0
        self.size = max(1, lanes)
        self.events: queue.SimpleQueue = queue.SimpleQueue()  # lanes -> caller
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()  # caller -> lanes
        self.stopping = threading.Event()
        self.hold_until = 0.0  # no lane sends before this (a platform's Retry-After)
        self.keys: set = set()  # submitted, not yet returned by `wait`
        self._tickets: deque[_Ticket] = deque()
        self._last_slot: float | None = None
        self._ask_again_at: float | None = None  # the limiter's NotYet: no slot before then
        self._threads = [
            threading.Thread(
                target=self._lane, args=(self._lane_connector(connector),), daemon=True
            )
            for _ in range(self.size)
        ]

    def _lane_connector(self, connector: BaseConnector) -> BaseConnector:
        lane = copy.copy(connector)  # the same session (connection pool), mapping, options
        lane.exchanges = []
        lane.redact = copy.deepcopy(connector.redact)  # learns its own requests' signatures
        lane.rate_limiter = LaneLimiter(self)
        return lane

    def __enter__(self) -> "InFlight":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        while self.keys:
            self._collect(timeout=None, raise_errors=exc[0] is None)
        for _ in self._threads:
            self.jobs.put(None)
        for thread in self._threads:
            thread.join()

    # -- the caller's side

    @property
    def free(self) -> int:
        return self.size - len(self.keys)

    @property
    def ending(self) -> bool:
        """Stopped, or giving way: no job is to be submitted any more."""
        return self.stopping.is_set() or self.gave_way

    def submit(self, key, job: Callable[[BaseConnector], Any]) -> None:
        if key in self.keys:
            raise ValueError(f"{key!r} is in flight already")
        if not self.free:
            raise RuntimeError("every lane is busy: wait() first")
        self.keys.add(key)
        self.jobs.put((key, job))

    def wait(self, timeout: float | None = None) -> list[tuple[Any, Any]]:
        """Serve the lanes' slot requests until a job finishes (or `timeout` seconds pass);
        every job finished by then, as (key, outcome)."""
        return self._collect(timeout=timeout, raise_errors=True)

    def stop(self) -> None:
        """Send nothing more: slot requests are refused, lanes sleeping until a slot give up."""
        self.stopping.set()
        while self._tickets:
            self._answer(self._tickets.popleft(), None)

    def _collect(self, *, timeout, raise_errors) -> list[tuple[Any, Any]]:
        done, error = [], None
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done:
            event = self._next_event(deadline)
            if event is None:
                break  # timed out
            while event is not None:
                kind = event[0]
                if kind == "slot":
                    self._admit(event[1])
                elif kind == "defer":
                    if self.limiter is not None:
                        self.limiter.defer(event[1])
                    self._last_slot = self._ask_again_at = None
                else:  # "done"
                    _, key, outcome, raised = event
                    self.keys.discard(key)
                    done.append((key, outcome))
                    error = error or raised
                event = self._poll()
            self._grant()
        if error is not None and raise_errors:
            raise error
        return done

    def _next_event(self, deadline):
        """The next event from a lane, waking to grant a slot when one falls due; None at
        `deadline`."""
        while True:
            self._grant()
            due = self._grant_due()
            now = time.monotonic()
            limit = None if deadline is None else max(0.0, deadline - now)
            if due is not None:
                limit = due if limit is None else min(limit, due)
            try:
                return self.events.get(timeout=limit)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return None

    def _poll(self):
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return None

    def _admit(self, ticket: _Ticket) -> None:
        """Queue a lane's slot request, unless it is a job's first and this flight gives way."""
        if ticket.first_of_job and not (self.stopping.is_set() or self.gave_way):
            if self._jobs_admitted and self.give_way:
                self._grant()  # the jobs admitted before this one get the slots due first
                if self.give_way(len(self._tickets)):
                    self._end_for_giving_way()
            self._jobs_admitted += 1
        if self.stopping.is_set() or (ticket.first_of_job and self.gave_way):
            self._answer(ticket, None)
        else:
            self._tickets.append(ticket)

    def _end_for_giving_way(self) -> None:
        """No job starts any more: the jobs waiting for their first slot are refused (they
        come back NOT_SENT); the requests of jobs under way still get theirs, so a contact
        whose first request went is not left half pushed, and no slot given is wasted."""
        self.gave_way = True
        waiting, self._tickets = self._tickets, deque()
        for ticket in waiting:
            if ticket.first_of_job:
                self._answer(ticket, None)
            else:
                self._tickets.append(ticket)

    def _grant_due(self) -> float | None:
        """Seconds until the next waiting lane may be given a slot, None when none waits."""
        if not self._tickets:
            return None
        due = [self._last_slot - RESERVE_AHEAD] if self._last_slot is not None else []
        if self._ask_again_at is not None:
            due.append(self._ask_again_at)
        return max(0.0, max(due) - time.time()) if due else None

    def _grant(self) -> None:
        while self._tickets and not self.stopping.is_set():
            now = time.time()
            if self._last_slot is not None and self._last_slot - now > RESERVE_AHEAD:
                return
            if self._ask_again_at is not None and now < self._ask_again_at:
                return
            try:
                slot = self._fresh_slot(self._tickets[0].call_class)
            except NotYet as later:  # a Retry-After is being waited out: ask again then
                self._ask_again_at = later.at
                return
            self._ask_again_at = None
            self._last_slot = slot
            self._answer(self._tickets.popleft(), slot)
        while self._tickets:  # stopping
            self._answer(self._tickets.popleft(), None)

    def _fresh_slot(self, call_class: str | None) -> float:
        """The next slot from the shared limit, skipping slots of the limiter's block that
        passed unused (at most a block's worth): sent now, a request on one would join the
        ones other workers send at their own slots in the current second."""
        if self.limiter is None:
            return time.time()
        slot = self.limiter.reserve(call_class)
        for _ in range(MAX_BLOCK):
            if slot >= time.time() - LATE_AFTER:
                break
            slot = self.limiter.reserve(call_class)
        return slot

    @staticmethod
    def _answer(ticket: _Ticket, slot: float | None) -> None:
        ticket.slot = slot
        ticket.answered.set()

    # -- a lane's side

    def slot(self, call_class: str | None, *, first_of_job: bool = False) -> float:
        """Block until the caller's thread gives this lane a slot; SendCancelled if it will
        not (the chunk is stopping)."""
        if self.stopping.is_set():
            raise SendCancelled
        ticket = _Ticket(call_class, first_of_job)
        self.events.put(("slot", ticket))
        ticket.answered.wait()
        if ticket.slot is None:
            raise SendCancelled
        return ticket.slot

    def _lane(self, connector: BaseConnector) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                return
            key, job = item
            connector.rate_limiter.fresh = True
            outcome, raised = NOT_SENT, None
            if not self.stopping.is_set():
                try:
                    outcome = job(connector)
                except SendCancelled:
                    outcome = NOT_SENT
                except Exception as err:  # handed to the caller's thread, raised there
                    raised = err
                finally:
                    connector.drain_exchanges()  # nothing of a stopped job leaks into the next
            self.events.put(("done", key, outcome, raised))
