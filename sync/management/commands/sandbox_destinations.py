from django.core.management.base import BaseCommand

from sync.models import Destination
from sync.sandbox import accounts

SANDBOX_DESTINATIONS = [
    {"platform": "yespo", "name": "Yespo (sandbox)", "key_env": "SYNC_CREDENTIAL_YESPO_API_KEY"},
    {
        "platform": "ivvy",
        "name": "iVvy (sandbox)",
        "key_env": "SYNC_CREDENTIAL_IVVY_API_KEY",
        "secret_env": "SYNC_CREDENTIAL_IVVY_API_SECRET",
    },
    {
        "platform": "cendyn",
        "name": "Cendyn CRM (sandbox)",
        "key_env": "SYNC_CREDENTIAL_CENDYN_SECRET",
        "settings": {"account_id": accounts.CENDYN_ACCOUNT_ID},
    },
    {"platform": "loops", "name": "Loops (sandbox)", "key_env": "SYNC_CREDENTIAL_LOOPS_API_KEY"},
]


class Command(BaseCommand):
    help = "Create, the first time, one destination per platform pointing at the sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8765", help="The sandbox's URL.")

    def handle(self, *args, url, **options):
        for spec in SANDBOX_DESTINATIONS:
            fields = {**spec, "base_url": f"{url.rstrip('/')}/{spec['platform']}/"}
            _, created = Destination.objects.get_or_create(name=spec["name"], defaults=fields)
            if created:
                self.stdout.write(f"Created destination {spec['name']} -> {fields['base_url']}")
