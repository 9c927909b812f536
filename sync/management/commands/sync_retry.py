from django.core.management.base import BaseCommand

from contacts import services as contacts_services
from sync import services


class Command(BaseCommand):
    help = (
        "One pass of the scheduler: queue due retries, take back work of dead workers and mark "
        "their task rows failed, and mark failed (resumable) the imports whose worker stopped."
    )

    def handle(self, *args, **options):
        queued = services.retries_enqueue_due()
        abandoned = services.tasks_fail_abandoned()
        stopped = contacts_services.import_jobs_recover()
        self.stdout.write(
            f"{queued} pushes queued, {abandoned} abandoned tasks marked failed, "
            f"{stopped} stopped imports marked failed."
        )
