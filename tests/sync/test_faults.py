"""Faults survived: each drill pushes 200 contacts with two real db_worker processes under a
sandbox fault, then compares the platform's store with our database: every contact synced
exactly once with its latest values, no duplicate on the platform. bench/faults.py runs the
same drills with 2,000 contacts."""

import pytest

from contacts.demo import seed_demo_contacts
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.conftest import platform_with, platforms_with
from tests.sync import drills

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CONTACTS = 200
# Drills on a platform pushed one contact per request: each fault meets single-contact calls.
PER_CONTACT = platform_with(bulk=False)


@pytest.fixture
def drill(sandbox, sandbox_destination, sandbox_env):
    made = []

    def make(platform, **fields):
        sandbox.sandbox.set_rate_limit(platform, None)  # raised limits keep the suite fast
        destination = sandbox_destination(platform, **{"rate_limit": 1000, **fields})
        seed_demo_contacts(CONTACTS)
        made.append(drills.Drill(sandbox.url, destination, sandbox_env))
        return made[-1]

    yield make
    for each in made:
        each.stop_workers()


def _assert_clean(report, failed=0):
    assert report.duplicates == 0, report
    assert report.stale == 0, report
    assert report.failed == failed, report
    assert report.synced == CONTACTS - failed, report
    assert report.on_platform == CONTACTS - failed, report


@pytest.mark.parametrize("platform", [PER_CONTACT, platform_with(bulk=True)])
def test_outage_in_the_middle_of_a_bulk_push_then_recovery(drill, platform):
    report = drills.outage_mid_push(drill(platform))
    _assert_clean(report)
    assert report.requests.get("503", 0) > 0 and report.requests.get("refused", 0) > 0, report


def test_429_storm_no_request_before_retry_after(drill):
    # 100 requests/s: the push lasts about 2 s, so the storm, switched on once a sixth is
    # synced, meets it. At 1,000/s two workers with requests in flight could finish the 200
    # contacts between two of the drill's polls, and the storm refused nothing.
    d = drill(PER_CONTACT, rate_limit=100)
    report = drills.storm_429(d)
    _assert_clean(report)
    refusals, early = drills.requests_before_retry_after(d)
    assert refusals > 0, "the storm refused nothing"
    assert early == 0, f"{early} requests went out before Retry-After"


def test_bursts_of_500_and_503_timeouts_and_refused_connections(drill):
    report = drills.bursts_timeouts_refusals(drill(PER_CONTACT, timeout=0.5))
    _assert_clean(report)
    for status in ("500", "503", "refused"):
        assert report.requests.get(status, 0) > 0, report
    assert SyncAttempt.objects.filter(error__contains="timed out").exists()


def test_permanent_400_fails_those_contacts_once_and_syncs_the_rest(drill):
    report = drills.permanent_400(drill(PER_CONTACT), bad=10)
    _assert_clean(report, failed=10)
    failed = ContactSyncState.objects.filter(status=SyncStatus.FAILED)
    assert all("HTTP 400" in s.last_error for s in failed)
    assert set(failed.values_list("attempts", flat=True)) == {1}  # not retried
    assert SyncAttempt.objects.filter(contact__in=failed.values("contact")).count() == 10


def test_401_pauses_the_destination_until_credentials_are_fixed(drill):
    # a bulk platform, the other one than the outage drill's when there are two
    d = drill(platforms_with(bulk=True)[-1])
    report = drills.revoked_401(d)
    paused = d.paused_report
    assert paused.failed == 0, paused
    assert paused.requests.get("401", 0) <= 4, "contacts were refused one by one"
    _assert_clean(report)


@pytest.mark.parametrize("kind", ["html", "empty", "noid"])
def test_200_with_a_body_we_cannot_use(drill, kind):
    d = drill(PER_CONTACT)
    report = drills.malformed_200(d, kind)
    assert len(d.failed_under_fault) == CONTACTS
    assert all("HTTP 200" in error for error in d.failed_under_fault)
    _assert_clean(report)  # the retry matched the records the platform kept: no duplicate


def test_two_people_saving_while_a_bulk_push_runs(drill):
    _assert_clean(drills.saves_during_push(drill(PER_CONTACT)))
