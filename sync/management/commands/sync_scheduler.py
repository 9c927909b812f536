import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from contacts import services as contacts_services
from sync import alerts, services
from sync.dbretry import with_database_retry

DAY = 24 * 3600
MAX_BACKOFF = 60.0  # seconds between passes while they keep failing


class Command(BaseCommand):
    help = (
        "Long-running: every few seconds, queue the retries that are due, take back work left "
        "in progress by a worker that died and mark its task failed; daily, queue each "
        "destination's vendor-change probe and a sampled read-back (drift), and prune the "
        "attempt log and finished task rows; at SYNC_POLL_INTERVAL_MINUTES, each "
        "destination's poll of the platform for what webhooks do not deliver. "
        "Safe to run on several machines at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.SYNC_SCHEDULER_INTERVAL)

    def handle(self, *args, interval, **options):
        self.running = True
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.stdout.write(f"sync_scheduler: checking every {interval:g} s")
        self.next_prune = 0.0
        failures = 0
        while self.running:
            close_old_connections()
            try:
                self._pass()
                failures = 0
            except Exception as err:  # a database outage must not end the scheduler
                failures += 1
                self.stderr.write(f"sync_scheduler pass failed ({failures} in a row): {err}")
            # back off while passes keep failing, so a sick database is not hammered
            self._sleep(min(MAX_BACKOFF, interval * 2 ** max(0, failures - 1)))

    def _pass(self):
        """One pass; each step is retried while the database is locked or away."""
        queued = with_database_retry(services.retries_enqueue_due)
        if queued:
            self.stdout.write(f"{queued} pushes queued")
        abandoned = with_database_retry(services.tasks_fail_abandoned)
        if abandoned:
            self.stdout.write(f"{abandoned} abandoned tasks marked failed")
        replanned = with_database_retry(services.runs_prepare_recover)
        if replanned:
            self.stdout.write(f"{replanned} runs whose planning stopped queued again")
        stopped = with_database_retry(contacts_services.import_jobs_recover)
        if stopped:
            self.stdout.write(f"{stopped} imports whose worker stopped marked failed")
        with_database_retry(alerts.failure_rates_check)
        with_database_retry(alerts.inbound_alerts_check)  # silent destinations, refusal spikes
        with_database_retry(services.pushes_per_hour_store)  # the dashboard's settled hours
        with_database_retry(services.inbound_per_hour_store)  # and its inbound ones
        with_database_retry(services.status_counts_compact)  # and its counts of states
        # due per destination in the database (a day after its last probe), so a restarted
        # scheduler neither skips nor repeats one
        probes = with_database_retry(services.probes_enqueue_due)
        if probes:
            self.stdout.write(f"{probes} vendor-change probes queued")
        if time.monotonic() >= self.next_prune:  # daily; several schedulers may all prune
            with_database_retry(services.attempts_prune, days=settings.SYNC_ATTEMPT_RETENTION_DAYS)
            with_database_retry(services.tasks_prune, days=settings.SYNC_TASK_RETENTION_DAYS)
            self.next_prune = time.monotonic() + DAY
        # daily per destination (claimed in the database: several schedulers queue it once)
        reconciled = with_database_retry(services.reconcile_enqueue_daily)
        if reconciled:
            self.stdout.write(f"{reconciled} contacts queued for the daily read-back")
        # per destination at its interval (claimed in the database, like the probes)
        polls = with_database_retry(services.polls_enqueue_due)
        if polls:
            self.stdout.write(f"{polls} polls queued")

    def _stop(self, signum, frame):
        self.running = False

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while self.running and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))
