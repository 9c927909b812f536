"""Polling, where no webhook reaches us (shared/inbound.md part A, "Polling"), in
platform-neutral words.

A connector that can poll declares `polls = True` and implements `poll(cursor=, sample=,
now=) -> PollResult`: it asks the platform's documented calls what changed since `cursor`
(the dict it returned last time, `{}` at first) and, where the platform can only be asked
about one contact at a time, about each contact of `sample`. It answers `PlatformEvent`s, the
same vocabulary its webhooks produce, so a poll feeds the very pipeline a webhook does
(sync.polling stores and applies them). It also declares, in words the destination page
shows, what it polls (`polled`) and what the platform gives no poll for (`not_polled`, with
the vendor's reason). Nothing here touches the ORM.
"""

import datetime
from dataclasses import dataclass, field

from sync.connectors.inbound import PlatformEvent


@dataclass(frozen=True)
class PollSubject:
    """A contact the platform holds from us, for the polls that ask per contact."""

    external_id: str
    remote_id: str
    email: str = ""


@dataclass
class PollResult:
    events: list[PlatformEvent]
    cursor: dict  # stored, and handed back to the next poll
    notes: list[str] = field(default_factory=list)  # what the run could not do, in words


def overlap_start(value: str, *, fmt: str, minutes: int = 1) -> str:
    """A cursor time moved back by `minutes` (part A: a minute of overlap, since whether the
    platform's "from" is inclusive is not documented; repeats are deduplicated)."""
    moment = datetime.datetime.strptime(value, fmt) - datetime.timedelta(minutes=minutes)
    return moment.strftime(fmt)
