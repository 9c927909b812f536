from django.core.management.base import BaseCommand

from sync.sandbox import build_sandbox
from sync.sandbox.server import SandboxServer


class Command(BaseCommand):
    help = "Serve every registered platform's contract on 127.0.0.1 (sync/sandbox/)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--no-rate-limits",
            action="store_true",
            help="Serve without the platforms' rate limits (benchmarks).",
        )

    def handle(self, *args, port, no_rate_limits, **options):
        sandbox = build_sandbox()
        if no_rate_limits:
            for slug in sandbox.emulators:
                sandbox.set_rate_limit(slug, None)
        server = SandboxServer(sandbox, port=port)
        self.stdout.write(
            f"Sandbox on {server.url}/{{{','.join(sandbox.emulators)}}}/  "
            f"(control: {server.url}/_sandbox/)"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
