"""A sandbox that speaks every registered platform's contract on loopback (see server.py).

Each connector names its emulator (`sandbox_emulator`); each emulator declares its one fake
account (`account_credentials`, `account_settings`). From those come the sandbox itself, the
environment `.env.example` sets, and the destinations `make run` and the tests point at it.
"""

from django.utils.module_loading import import_string

from sync import connectors
from sync.sandbox.core import PlatformEmulator, Sandbox
from sync.sandbox.server import SandboxServer

CREDENTIAL_VARIABLE = "SYNC_CREDENTIAL_{slug}_{credential}"


def emulator_class(connector_class) -> type[PlatformEmulator]:
    return import_string(connector_class.sandbox_emulator)


def build_sandbox(*, seed: int | None = None) -> Sandbox:
    emulators = [emulator_class(cls)() for cls in connectors.get_class_list()]
    return Sandbox(emulators, seed=seed)


def start_sandbox(*, port: int = 0) -> SandboxServer:
    """Start a sandbox server in a background thread; `.url` says where."""
    return SandboxServer(build_sandbox(), port=port).start()


def credential_variable(slug: str, credential: str) -> str:
    """The environment variable holding a sandbox account's credential."""
    return CREDENTIAL_VARIABLE.format(slug=slug.upper(), credential=credential.upper())


def _all_credentials(cls) -> dict:
    """The connector's credentials and its inbound ones (a webhook signing secret)."""
    return {**cls.credentials, **cls.inbound_credentials}


def sandbox_environment() -> dict[str, str]:
    """Every sandbox credential, by the variable that holds it (what `.env.example` sets)."""
    return {
        credential_variable(cls.slug, name): emulator_class(cls).account_credentials[name]
        for cls in connectors.get_class_list()
        for name in _all_credentials(cls)
    }


def sandbox_destination_fields(slug: str, sandbox_url: str) -> dict:
    """The fields of a destination on the sandbox's account of one platform."""
    cls = connectors.get_class(slug)
    fields = {
        "platform": slug,
        "name": f"{cls.label} (sandbox)",
        "base_url": f"{sandbox_url.rstrip('/')}/{slug}/",
        "settings": dict(emulator_class(cls).account_settings),
    }
    for name, credential in _all_credentials(cls).items():
        fields[credential.field] = credential_variable(slug, name)
    return fields
