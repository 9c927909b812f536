from django.conf import settings
from django.core.management.base import BaseCommand

from sync import services


class Command(BaseCommand):
    help = "Delete attempt-log rows older than SYNC_ATTEMPT_RETENTION_DAYS (default 90)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.SYNC_ATTEMPT_RETENTION_DAYS)

    def handle(self, *args, days, **options):
        deleted = services.attempts_prune(days=days)
        self.stdout.write(f"Deleted {deleted} attempts older than {days} days.")
