from tests.conftest import PLATFORMS  # noqa: F401  (re-exported)


def sandbox_store(sandbox, platform):
    return sandbox.sandbox.store(platform)[platform]


def sandbox_requests(sandbox, platform=None):
    """How many requests the sandbox answered, for one platform or all."""
    counts = sandbox.sandbox.stats()["requests"]
    platforms = [platform] if platform else list(counts)
    return sum(sum(counts.get(p, {}).values()) for p in platforms)
