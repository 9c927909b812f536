"""Django Tasks entry points of the background import: thin adapters over the worker side
of `contacts.services` (which alone enqueues them). Only the job's id travels: the file and
its rows stay in the job's row, never in the task's."""

from django_tasks import task


@task()
def preview_import(*, job_id: int):
    """Check every row of an uploaded file, nothing written (the preview)."""
    from contacts.services import import_job_preview

    import_job_preview(job_id=job_id)


@task()
def run_import(*, job_id: int):
    """The confirmed import: check, then write in chunks, push once at the end."""
    from contacts.services import import_job_run

    import_job_run(job_id=job_id)
