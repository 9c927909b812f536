from django.core.management.base import BaseCommand

from sync import services


class Command(BaseCommand):
    help = (
        "One pass of the scheduler: queue due retries, take back work of dead workers and mark "
        "their task rows failed."
    )

    def handle(self, *args, **options):
        queued = services.retries_enqueue_due()
        abandoned = services.tasks_fail_abandoned()
        self.stdout.write(f"{queued} pushes queued, {abandoned} abandoned tasks marked failed.")
