from django.core.management.base import BaseCommand

from sync import connectors
from sync.models import Destination
from sync.sandbox import sandbox_destination_fields


class Command(BaseCommand):
    help = "Create, the first time, one destination per platform pointing at the sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8765", help="The sandbox's URL.")

    def handle(self, *args, url, **options):
        for slug in connectors.CONNECTORS:
            fields = sandbox_destination_fields(slug, url)
            destination, created = Destination.objects.get_or_create(
                name=fields["name"], defaults=fields
            )
            if created:
                self.stdout.write(f"Created destination {fields['name']} -> {fields['base_url']}")
            elif destination.base_url != fields["base_url"]:  # the sandbox moved to another port
                destination.base_url = fields["base_url"]
                destination.save()
                self.stdout.write(f"Destination {fields['name']} now -> {fields['base_url']}")
