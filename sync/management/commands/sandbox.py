import signal

from django.core.management.base import BaseCommand

from sync.sandbox import build_sandbox
from sync.sandbox.server import SandboxServer
from sync.sandbox.store_file import StoreFile


class Command(BaseCommand):
    help = "Serve every registered platform's contract on 127.0.0.1 (sync/sandbox/)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--no-rate-limits",
            action="store_true",
            help="Serve without the platforms' rate limits (benchmarks).",
        )
        parser.add_argument(
            "--store",
            metavar="PATH",
            help="Keep the platforms' stores in this JSON file across restarts: read at "
            "start, written every --save-every seconds when changed and on shutdown.",
        )
        parser.add_argument("--save-every", type=float, default=5.0, metavar="SECONDS")

    def handle(self, *args, port, no_rate_limits, store, save_every, **options):
        sandbox = build_sandbox()
        if no_rate_limits:
            for slug in sandbox.emulators:
                sandbox.set_rate_limit(slug, None)
        store_file = StoreFile(sandbox, store, every=save_every) if store else None
        if store_file is not None:
            restored = store_file.restore()
            self.stdout.write(f"Sandbox store: {store} ({'restored' if restored else 'new'})")
            store_file.start()
        server = SandboxServer(sandbox, port=port)
        self.stdout.write(
            f"Sandbox on {server.url}/{{{','.join(sandbox.emulators)}}}/  "
            f"(control: {server.url}/_sandbox/)"
        )
        self.stdout.flush()
        # bin/run stops its processes with TERM: end like Ctrl-C, so the store is saved.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            if store_file is not None:
                store_file.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
