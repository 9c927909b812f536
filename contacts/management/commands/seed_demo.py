import time

from django.core.management.base import BaseCommand

from contacts.demo import seed_demo_contacts
from contacts.models import Contact


class Command(BaseCommand):
    help = "Insert N realistic demo contacts with their inline children (bulk inserts)."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=200, help="How many (default 200).")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when contacts already exist."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed.")

    def handle(self, *args, contacts, if_empty, seed, **options):
        if if_empty and Contact.objects.exists():
            self.stdout.write("Contacts exist already; no demo data added.")
            return
        started = time.perf_counter()

        def progress(done):
            if self.stdout.isatty():
                self.stdout.write(f"\r{done}/{contacts}", ending="")

        made = seed_demo_contacts(contacts, seed=seed, progress=progress)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"\nSeeded {made} demo contacts in {elapsed:.1f} s.")
