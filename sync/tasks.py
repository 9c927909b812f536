"""Django Tasks entry points: thin adapters over sync.services. Arguments are ids and plain
values (they are stored as JSON by the database backend)."""

from django_tasks import task

from sync import services


@task()
def push_contacts(
    *,
    destination_id: int,
    contact_ids: list[int],
    trigger: str,
    user_id: int | None = None,
    run_id: int | None = None,
    force: bool = False,
):
    context = services.PushContext(trigger=trigger, user_id=user_id, run_id=run_id, force=force)
    services.contacts_push_chunk(
        destination_id=destination_id, contact_ids=contact_ids, context=context
    )


@task()
def delete_contact(
    *, destination_id: int, external_id: str, remote_id: str, user_id: int | None = None
):
    services.contact_delete_remote(
        destination_id=destination_id, external_id=external_id, remote_id=remote_id, user_id=user_id
    )
