from django.core.management.base import BaseCommand, CommandError

from sync import polling
from sync.models import Destination


class Command(BaseCommand):
    help = (
        "Poll one destination's platform now for what webhooks do not deliver (opt-outs, "
        "bounces, deletions: shared/inbound.md part A), apply what is new through the inbound "
        "pipeline and move its cursor, as the scheduler's poll does (sync/polling.py)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--destination", required=True, help="the destination's name")

    def handle(self, *args, destination, **options):
        found = Destination.objects.filter(name=destination).first()
        if found is None:
            raise CommandError(f"no destination named {destination!r}")
        if not found.connector_class.polls:
            raise CommandError(f"{found.connector_class.label} has no poll")
        outcome = polling.destination_poll(destination=found)
        if outcome.error:
            raise CommandError(f"{found}: {outcome}")
        self.stdout.write(f"{found}: {outcome}")
