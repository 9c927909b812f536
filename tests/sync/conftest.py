import pytest

PLATFORMS = ["yespo", "ivvy", "cendyn", "loops"]


@pytest.fixture
def immediate_tasks(settings):
    """Queued work runs at enqueue time, in this process (no worker needed)."""
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    }


@pytest.fixture
def all_destinations(sandbox_destination):
    return [sandbox_destination(p) for p in PLATFORMS]


def sandbox_store(sandbox, platform):
    return sandbox.sandbox.store(platform)[platform]


def sandbox_requests(sandbox, platform=None):
    """How many requests the sandbox answered, for one platform or all."""
    counts = sandbox.sandbox.stats()["requests"]
    platforms = [platform] if platform else list(counts)
    return sum(sum(counts.get(p, {}).values()) for p in platforms)
