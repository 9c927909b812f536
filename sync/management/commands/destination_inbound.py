"""Print a destination's inbound URL and its platform's registration steps; with
`--register`, perform the registration through the platform's API where it has one (iVvy)."""

from django.core.management.base import BaseCommand, CommandError

from sync import inbound, selectors
from sync.models import Destination


class Command(BaseCommand):
    help = "Show a destination's inbound URL and how to register it; --register performs it."

    def add_arguments(self, parser):
        parser.add_argument("--destination", required=True, help="The destination's name.")
        parser.add_argument(
            "--register",
            action="store_true",
            help="Register the URL through the platform's API (where it has one).",
        )

    def handle(self, *args, destination, register, **options):
        found = Destination.objects.filter(name=destination).first()
        if found is None:
            raise CommandError(f"No destination named {destination!r}.")
        summary = selectors.destination_inbound_summary(found)
        self.stdout.write(f"Inbound URL: {summary['url'] or '(none: set SYNC_PUBLIC_URL)'}")
        self.stdout.write(f"Setup: {summary['setup']}")
        for number, step in enumerate(summary["steps"], 1):
            self.stdout.write(f"{number}. {step}")
        if register:
            done, message = inbound.destination_inbound_register(destination=found)
            if not done:
                raise CommandError(message)
            self.stdout.write(self.style.SUCCESS(message))
