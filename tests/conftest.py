import pytest
from django.db import connection

from sync import connectors


def pytest_collection_modifyitems(config, items):
    """Tests marked postgres or browser run once, on PostgreSQL; on SQLite they are skipped."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    for item in items:
        for marker in ("postgres", "browser"):
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"{marker} test: runs on PostgreSQL only"))


def pytest_report_header(config):
    from django.conf import settings

    return f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"


@pytest.fixture
def admin_client_logged(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


@pytest.fixture
def db_vendor():
    return connection.vendor


@pytest.fixture(scope="session")
def sandbox_server():
    """The sandbox, served over real HTTP on a free loopback port for the whole session."""
    from sync.sandbox import start_sandbox

    server = start_sandbox()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    """The running sandbox, emptied and with no faults, for one test."""
    sandbox_server.sandbox.reset()
    yield sandbox_server
    sandbox_server.sandbox.reset()


@pytest.fixture
def sandbox_env(monkeypatch):
    """The sandbox account's credentials in the environment, as .env.example sets them."""
    from sync.sandbox import sandbox_environment

    values = sandbox_environment()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def sandbox_destination(db, sandbox, sandbox_env):
    """make(platform, **fields) -> a Destination pointing at the running sandbox."""
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    def make(platform, **fields):
        defaults = {
            **sandbox_destination_fields(platform, sandbox.url),
            "name": f"{platform} sandbox",
        }
        return Destination.objects.create(**{**defaults, **fields})

    return make


PLATFORMS = list(connectors.CONNECTORS)


def platforms_with(*, bulk: bool | None = None, delete: bool | None = None) -> list[str]:
    """The registered platforms with these capabilities (None: either), highest
    `default_rate_limit` first: the sandbox enforces it, so a scenario on the first waits
    least. `bulk`: a bulk endpoint (`batch_size` > 0); `delete`: `supports_delete`."""
    matches = [
        cls
        for cls in connectors.get_class_list()
        if bulk in (None, cls.batch_size > 0) and delete in (None, cls.supports_delete)
    ]
    return [cls.slug for cls in sorted(matches, key=lambda cls: -cls.default_rate_limit)]


def platform_with(*, bulk: bool | None = None, delete: bool | None = None) -> str:
    """The first of `platforms_with(...)`; LookupError, naming the capabilities, when no
    registered platform has them."""
    matches = platforms_with(bulk=bulk, delete=delete)
    if not matches:
        raise LookupError(f"no registered platform with bulk={bulk}, delete={delete}")
    return matches[0]


@pytest.fixture
def immediate_tasks(settings):
    """Queued work runs at enqueue time, in this process (no worker needed)."""
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    }


@pytest.fixture
def all_destinations(sandbox_destination):
    return [sandbox_destination(p) for p in PLATFORMS]
