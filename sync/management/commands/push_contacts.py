import sys
import time

from django.core.management.base import BaseCommand, CommandError

from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, Destination, SyncRun, SyncStatus, Trigger

DRY_RUN_SHOWN = 20  # contacts whose requests a dry run prints


class Command(BaseCommand):
    help = (
        "Push contacts to one destination, with a live progress bar and a summary. Runs in this "
        "process by default; --queue hands the chunks to the workers and follows their progress. "
        "Exits non-zero when any contact failed. Ctrl-C cancels: what was not sent stays as it was."
    )

    def add_arguments(self, parser):
        parser.add_argument("--destination", required=True, help="The destination's name.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="Every contact.")
        which.add_argument("--failed", action="store_true", help="Contacts whose push failed.")
        which.add_argument(
            "--changed",
            action="store_true",
            help="Contacts changed since the platform last accepted them.",
        )
        which.add_argument("--ids", nargs="+", type=int, help="These contact ids.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Send nothing: print the counts, the requests and the time the push would "
            "take, and the exact requests (credentials redacted) for the first 20 contacts.",
        )
        parser.add_argument("--force", action="store_true", help="Push unchanged contacts too.")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue for db_worker processes instead of pushing here.",
        )

    def handle(self, *args, destination, dry_run, force, queue, **options):
        target = Destination.objects.filter(name=destination).first()
        if target is None:
            names = ", ".join(Destination.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No destination named {destination!r} (there are: {names}).")
        contacts = self._selection(target, options)
        if dry_run:
            return self._dry_run(contacts, target, force)
        options = dict(
            contacts=contacts,
            destination=target,
            trigger=Trigger.COMMAND,
            user_id=None,
            force=force,
        )
        if queue:  # planned and queued by a worker, as the admin action's run
            run, plan = services.contacts_push_in_background(**options), None
        else:
            plan = services.push_plan(**options)
            run = plan.run
        progress = _Progress(self.stderr, run.total)
        try:
            if queue:
                self._follow(run, progress)
            else:
                self._push_here(plan, progress)
        except KeyboardInterrupt:
            services.run_cancel(run=run)
            self._summary(run, progress)
            sys.exit(130)
        self._summary(run, progress)
        if SyncRun.objects.get(pk=run.pk).failed:
            sys.exit(1)

    def _selection(self, target, options):
        contacts = Contact.objects.all()
        if options["ids"]:
            return contacts.filter(pk__in=options["ids"])
        if options["failed"]:
            failed = ContactSyncState.objects.filter(destination=target, status=SyncStatus.FAILED)
            return contacts.filter(pk__in=failed.values("contact_id"))
        return contacts  # --all and --changed: unchanged ones are settled without a request

    def _dry_run(self, contacts, target, force):
        """The counts, the requests and the time for the whole selection, then the exact
        requests for the first contacts it would send (services.push_dry_run). Sends nothing."""
        (run,) = services.push_dry_run(
            contacts=contacts, destination=target, force=force, show=DRY_RUN_SHOWN
        )
        self.stdout.write(
            f"Dry run on {target}: {run.selected} selected, {run.to_send} would be "
            f"pushed, {run.unchanged} unchanged. Nothing was sent."
        )
        self.stdout.write(
            f"{run.requests} requests; with {run.queued} contacts already queued "
            f"({run.queued_requests} requests) at {run.rate:g} requests/s: about {run.duration}."
        )
        if run.error:
            self.stdout.write(run.error)
        if run.shown:
            self.stdout.write(f"The requests for the first {run.shown} contacts to send:")
        for call in run.planned:
            if call.refused:
                ids = ", ".join(call.external_ids)
                self.stdout.write(f"\n(refused before sending: {ids}) {call.refused}")
                continue
            note = f"  # {call.note}" if call.note else ""
            self.stdout.write(f"\n{call.method} {call.url}{note}")
            for name, value in call.headers.items():
                self.stdout.write(f"{name}: {value}")
            if call.body:
                self.stdout.write(call.pretty_body)

    def _push_here(self, plan, progress):
        services.plan_run_here(plan, on_chunk=progress.show)

    def _follow(self, run, progress):
        while True:
            run.refresh_from_db()
            progress.show(run)
            if run.state != SyncRun.State.RUNNING:
                return
            time.sleep(0.5)

    def _summary(self, run, progress):
        run.refresh_from_db()
        progress.show(run, final=True)
        self.stdout.write(
            f"Run {run.pk} {run.get_state_display().lower()}: {run.total} contacts, "
            f"{run.created} created, {run.updated} updated, {run.accepted} accepted (created or "
            f"updated), {run.unchanged} unchanged, "
            f"{run.failed} failed, {run.skipped} skipped, in {progress.elapsed():.1f} s."
        )


class _Progress:
    """One line, redrawn: bar, done/total, failed, rate, ETA."""

    def __init__(self, stream, total):
        self.stream, self.total = stream, max(total, 1)
        self.started = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.started

    def show(self, run, final=False):
        done = run.done
        rate = done / self.elapsed() if self.elapsed() > 0 else 0.0
        eta = (self.total - done) / rate if rate else 0.0
        filled = int(30 * done / self.total)
        line = (
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{run.total} done, "
            f"{run.failed} failed, {rate:.1f}/s, ETA {eta:.0f} s "
        )
        self.stream.write(line, ending="\n" if final else "")
        self.stream.flush()
