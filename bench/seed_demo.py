"""Time `seed_demo` for N contacts on a fresh SQLite file (default 100,000).

    .venv/bin/python bench/seed_demo.py [N]

Prints the time, the rate, and the rate relative to a 10,000-contact run made first in the same
process (a ratio near 1 means the insert cost does not grow with the table).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    workdir = tempfile.mkdtemp(prefix="bench-seed-")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed_demo_contacts(10_000, seed=1)
    small = time.perf_counter() - started
    Contact.objects.all().delete()

    started = time.perf_counter()
    seed_demo_contacts(count, seed=2)
    elapsed = time.perf_counter() - started
    print(f"seed_demo {count:,} contacts on SQLite: {elapsed:.1f} s ({count / elapsed:,.0f}/s)")
    print(f"baseline 10,000 contacts: {small:.1f} s ({10_000 / small:,.0f}/s)")
    print(f"rate ratio {count:,} vs 10,000: {(count / elapsed) / (10_000 / small):.2f}")


if __name__ == "__main__":
    main()
