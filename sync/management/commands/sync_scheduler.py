import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from sync import alerts, services


class Command(BaseCommand):
    help = (
        "Long-running: every few seconds, queue the retries that are due and take back work "
        "left in progress by a worker that died. Safe to run on several machines at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.SYNC_SCHEDULER_INTERVAL)

    def handle(self, *args, interval, **options):
        self.running = True
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.stdout.write(f"sync_scheduler: checking every {interval:g} s")
        next_prune = 0.0
        while self.running:
            close_old_connections()
            try:
                queued = services.retries_enqueue_due()
                alerts.failure_rates_check()
                if queued:
                    self.stdout.write(f"{queued} pushes queued")
                if time.monotonic() >= next_prune:  # daily; several schedulers may all prune
                    next_prune = time.monotonic() + 24 * 3600
                    services.attempts_prune(days=settings.SYNC_ATTEMPT_RETENTION_DAYS)
            except Exception as err:  # a database hiccup must not end the scheduler
                self.stderr.write(f"sync_scheduler pass failed: {err}")
            self._sleep(interval)

    def _stop(self, signum, frame):
        self.running = False

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while self.running and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))
