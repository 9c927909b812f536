import pytest
from django.db import connection


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


PLATFORMS = ["yespo", "ivvy", "cendyn", "loops"]


@pytest.fixture
def immediate_tasks(settings):
    """Queued work runs at enqueue time, in this process (no worker needed)."""
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    }


@pytest.fixture
def all_destinations(sandbox_destination):
    return [sandbox_destination(p) for p in PLATFORMS]
