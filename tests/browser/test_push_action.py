"""A sync admin pushes selected contacts from the list and watches a real worker push them."""

import subprocess
import time
from pathlib import Path

import pytest
import requests

from contacts.demo import seed_demo_contacts
from sync.models import ContactSyncState, SyncStatus
from tests.conftest import platform_with
from tests.sync.processes import manage, process_env

pytestmark = pytest.mark.browser

RUN_PROGRESS = """() => {
  const run = document.querySelector("#sync-runs .sync-run");
  if (!run) return null;
  return [Number(run.querySelector(".sync-done").textContent),
          run.querySelector(".sync-progress [style]").style.width];
}"""


@pytest.fixture
def worker(sandbox_env, tmp_path, request):
    """start(**env) -> a `db_worker` process on the test database, with these settings in its
    environment, stopped after the test (its output is printed when the test failed)."""
    processes = []

    def start(**env):
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # closed at teardown
        proc = manage(
            "db_worker",
            "--no-startup-delay",
            "--no-reload",
            env=process_env(**sandbox_env, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append((proc, log))
        return proc

    yield start
    for proc, log in processes:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(f"--- {log.name}\n{Path(log.name).read_text()}")


def _watch_run(page, timeout=30.0):
    """The (done, bar width) states the dashboard showed for the running push, until the run
    leaves the list of running pushes."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_PROGRESS)
        if state is None and seen:
            return seen
        if state is not None and (not seen or seen[-1] != state):
            seen.append(state)
        page.wait_for_timeout(100)
    raise AssertionError(f"the run did not finish in {timeout} s; the dashboard showed {seen}")


def test_sync_admin_pushes_selected_contacts_and_watches_the_progress(
    page, login, role_user, destinations, sandbox, worker
):
    seed_demo_contacts(20)
    slug = platform_with(bulk=False)  # one request per contact: progress is gradual
    target = destinations[slug]
    # 400 ms a contact, one request at a time: about 8 s in all, so the dashboard's 2-second
    # refresh sees it midway (with requests in flight the run can end between two refreshes)
    faults = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": slug, "latency_ms": 400}, timeout=5
    )
    faults.raise_for_status()
    login(role_user("Sync admins", "sam"))

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.check("#action-toggle")
    assert page.locator("input.action-select:checked").count() == 20
    page.select_option("select[name=action]", "push_selected")
    page.select_option("select[name=destination]", label=target.name)
    page.click("button[name=index]")
    message = page.get_by_text("queued for").inner_text()
    assert f"20 pushes queued for {target.name}" in message

    page.goto("/admin/")
    page.click("#sync-dashboard-link a")
    page.wait_for_url("**/admin/sync/dashboard/")
    assert page.evaluate(RUN_PROGRESS) == [0, "0%"]
    worker(SYNC_REQUESTS_IN_FLIGHT="1")
    seen = _watch_run(page)

    done = [d for d, _ in seen]
    widths = [float(w.rstrip("%")) for _, w in seen]
    assert any(0 < d < 20 for d in done), f"no progress seen between 0 and 20: {seen}"
    assert done == sorted(done) and widths == sorted(widths), seen
    assert widths[-1] > widths[0] == 0, seen  # the bar grew
    statuses = ContactSyncState.objects.filter(destination=target).values_list("status", flat=True)
    assert list(statuses) == [SyncStatus.SYNCED] * 20

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.wait_for_url("**/admin/contacts/contact/")
    marks = page.locator(f".sync-mark[data-destination='{target.pk}']")
    assert marks.count() == 20
    for i in range(20):
        assert "sync-synced" in marks.nth(i).get_attribute("class")
