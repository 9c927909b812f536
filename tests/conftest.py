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
