from django.core.management.base import BaseCommand, CommandError

from sync import services
from sync.models import Destination


class Command(BaseCommand):
    help = (
        "Read contacts back from one destination's platform and compare them, field by field, "
        "with what we would send now; store what differs (shown on each contact's sync panel "
        "and counted on the dashboard). Runs here, through the destination's rate limit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--destination", required=True, help="the destination's name")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--sample", type=int, help="a random sample of the contacts the platform holds"
        )
        which.add_argument("--all", action="store_true", help="every contact")
        which.add_argument("--ids", type=int, nargs="+", help="these contact ids")

    def handle(self, *args, destination, sample, all, ids, **options):
        try:
            target = Destination.objects.get(name=destination)
        except Destination.DoesNotExist:
            raise CommandError(f"no destination named {destination!r}") from None
        if sample is not None and sample < 1:
            raise CommandError("--sample takes a positive number")
        contact_ids = services.reconcile_candidates(
            destination=target, sample=None if all else sample, ids=ids
        )
        report = services.destination_reconcile(destination=target, contact_ids=contact_ids)
        for line in report.lines():
            self.stdout.write(line)
        if report.stopped:
            raise CommandError(report.stopped)
