"""The push task's bookkeeping of the chunks it takes on (sync.tasks._NextChunk), with a real
worker in this process (a transactional test: it commits like a worker process)."""

import pytest

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import engine, services
from tests.sync.test_fairness import SLOW, push_tasks, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_chunks_taken_on_fail_with_the_chunk_that_took_them(
    sandbox_destination, sandbox, settings, monkeypatch
):
    """A chunk that ends on an error of ours marks the chunks it took on failed with the same
    error, not successful."""
    settings.SYNC_CHUNK_SIZE = 5
    settings.SYNC_REQUESTS_IN_FLIGHT = 4
    slow = sandbox_destination(SLOW, rate_limit=50)
    seed_demo_contacts(15)
    services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=slow, trigger="action", user_id=None
    )
    first, *later = push_tasks(slow).order_by("enqueued_at")
    push_chunk = engine.contacts_push_chunk

    def push_chunk_then_fail(**kwargs):
        push_chunk(**kwargs)
        raise RuntimeError("a bug after the push")

    monkeypatch.setattr(engine, "contacts_push_chunk", push_chunk_then_fail)

    run_worker()

    first.refresh_from_db()
    assert first.status == "FAILED"
    for task in later:
        task.refresh_from_db()
        assert task.started_at < first.finished_at  # taken on by the first chunk's task
        assert task.status == "FAILED"
        assert task.exception_class_path == "builtins.RuntimeError"
