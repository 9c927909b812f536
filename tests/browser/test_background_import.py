"""Marketing staff import a file too large for one request: upload, the progress page follows
a real worker's check (it refreshes itself), they choose to skip the invalid rows, the page
follows the import to its final counts, and they download the skipped rows."""

import subprocess

import pytest

from contacts.models import Contact, ImportJob
from tests.browser.conftest import save_screenshot
from tests.sync.processes import manage, process_env

pytestmark = pytest.mark.browser

ROWS = 5000  # about 5,000 rows, as the journey (bench/import.py measures 100,000)
BAD = {200, 2777, 4400}


@pytest.fixture
def worker(tmp_path):
    log = open(tmp_path / "worker.log", "w")
    proc = manage(
        "db_worker",
        "--no-startup-delay",
        "--no-reload",
        "--interval",
        "0.2",
        env=process_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_upload_progress_skip_and_download(page, login, role_user, tmp_path, settings, worker):
    settings.IMPORT_BACKGROUND_ROWS = 1000
    lines = ["external_id,first_name,last_name,email,phone,country"]
    for n in range(1, ROWS + 1):
        phone = "12345" if n in BAD else ""
        lines.append(f"E{n},First{n},Last{n},p{n}@example.com,{phone},GB")
    upload = tmp_path / "people.csv"
    upload.write_text("\n".join(lines) + "\n")
    login(role_user("Marketing staff", "marta"))

    page.goto("/admin/contacts/contact/import/")
    page.set_input_files("input[type=file][name=import_file]", str(upload))
    if page.locator("select[name=format]").count():
        page.select_option("select[name=format]", label="csv")
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    page.wait_for_selector("#import-job")
    assert "/admin/contacts/contact/import/" in page.url

    # the page reloads itself until the worker has checked every row
    page.wait_for_selector("#import-job[data-status=previewed]", timeout=300_000)
    assert f"{ROWS} of {ROWS}" in page.locator("#import-checked").inner_text()
    assert "3 invalid rows" in page.locator("#import-counts").inner_text()
    listed = page.locator(".import-error-list li").all_inner_texts()
    assert [item.split(",")[0] for item in listed] == [f"Row {n}" for n in sorted(BAD)]
    assert page.locator("table.import-job-page tbody tr").count() == 50  # a page, not 5,000
    assert not Contact.objects.exists()
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        document, viewport = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert document <= viewport, f"the progress page is {document} px wide at {width} px"
    page.set_viewport_size({"width": 1366, "height": 900})
    save_screenshot(page, "import-background-preview", full_page=False)

    page.check("input[name=mode][value=skip]")
    page.click("#import-confirm button[type=submit]")
    page.wait_for_selector("#import-job[data-status=done]", timeout=600_000)
    totals = page.locator("#import-totals").inner_text()
    new = ROWS - len(BAD)
    assert f"Import finished: {new} new, 0 updated, 0 unchanged, 3 invalid rows skipped." in totals
    save_screenshot(page, "import-background-done", full_page=False)
    for width in (390, 1366):
        page.set_viewport_size({"width": width, "height": 900})
        document, viewport = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert document <= viewport, f"the finished page is {document} px wide at {width} px"
    assert Contact.objects.count() == ROWS - len(BAD)
    assert ImportJob.objects.get().content == ""

    with page.expect_download() as download:
        page.click("#import-skipped-csv")
    text = open(download.value.path()).read()
    lines = text.strip().splitlines()
    assert lines[0] == "row,external_id,first_name,last_name,email,phone,country,errors"
    assert [line.split(",")[0] for line in lines[1:]] == [str(n) for n in sorted(BAD)]
    assert all("phone: " in line for line in lines[1:])
