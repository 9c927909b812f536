"""Importing contacts from CSV, outside any request: read a bounded file, validate every row
(nothing written), then write the rows in short transactions.

The admin's import pages are adapters over these functions; a background import can call
them the same way. Limits are read from settings at each call: `IMPORT_MAX_BYTES`,
`IMPORT_MAX_ROWS` and `IMPORT_CHUNK_ROWS`.
"""

import csv
import io
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import tablib
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from import_export.results import Result

from contacts import bulk
from contacts.consent import consent_record_bulk_changes
from contacts.models import ConsentSource, Contact, GroupMembership, ImportJob, new_external_id
from contacts.resources import (
    COLUMNS,
    STATUS_COLUMNS,
    ContactResource,
    RowCheck,
    neutralise_formula,
)
from contacts.signals import contacts_bulk_written, held_contact_ids

MATCH_COLUMNS = ("external_id", "email")  # a row is matched on these; one is required
DELIMITERS = (",", ";", "\t", "|")  # comma first: it wins a tie

logger = logging.getLogger(__name__)


class ImportRefused(Exception):
    """The file as a whole is refused (too large, too many rows, a bad header); nothing of
    it was imported. The message is meant for the person who chose the file."""


@dataclass
class ImportOutcome:
    """What `contacts_import` did. `validation` is the validation pass's result when a row
    had an error (then nothing was written); `written_rows` counts the rows of the file that
    are committed (those before `start_row` included), and on a failure while writing,
    `failed_row` and `failure` say where and why, and `resume_row` is where to start again."""

    total_rows: int
    validation: Result | None = None
    written_rows: int = 0
    totals: Counter = field(default_factory=Counter)
    failed_row: int | None = None
    failure: str = ""

    @property
    def resume_row(self) -> int | None:
        return self.written_rows + 1 if self.failed_row is not None else None


def import_file_check_size(*, size: int) -> None:
    """Raises ImportRefused when a file of `size` bytes is over IMPORT_MAX_BYTES."""
    limit = settings.IMPORT_MAX_BYTES
    if size > limit:
        raise ImportRefused(
            f"The file is {_megabytes(size)}; an import takes at most {_megabytes(limit)} "
            "(IMPORT_MAX_BYTES). Split it into smaller files."
        )


def contacts_import_dataset(*, text: str) -> tablib.Dataset:
    """The rows of a CSV text, checked as a whole before any row is imported.

    The delimiter (comma, semicolon, tab or bar) is the one that splits the header into the
    most known columns. Raises ImportRefused for a file over IMPORT_MAX_BYTES or with more
    than IMPORT_MAX_ROWS rows (counted while reading: the rest is not read), a header with an
    unknown, duplicate or no known column or neither `external_id` nor `email`, a row whose
    number of cells is not the header's, or text that is not CSV. Blank lines are left out."""
    import_file_check_size(size=len(text))  # a character is at least one byte
    text = text.removeprefix("\ufeff")
    end = text.find("\n")
    delimiter = _delimiter(text[: end if end >= 0 else len(text)])
    reader = csv.reader(_lines(text), delimiter=delimiter)
    max_rows = settings.IMPORT_MAX_ROWS
    try:
        dataset = tablib.Dataset(headers=_checked_header(next(reader, [])))
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(dataset) >= max_rows:
                raise ImportRefused(
                    f"The file has more than {max_rows:,} rows, the most an import takes "
                    "(IMPORT_MAX_ROWS). Split it into smaller files."
                )
            if len(cells) != dataset.width:
                raise ImportRefused(
                    f"Row {len(dataset) + 1} has {len(cells)} cells and the header "
                    f"{dataset.width} columns: every row needs one cell per column."
                )
            dataset.append(cells)
    except csv.Error as err:
        raise ImportRefused(f"The file is not valid CSV: {err}.") from err
    if not len(dataset):
        raise ImportRefused("The file has a header but no rows.")
    return dataset


def _lines(text: str):
    """The lines of `text`, each with its "\n", as `io.StringIO(text)` gives them to the csv
    reader, without its copy of the whole text (4 bytes a character: 36 MB for a
    100,000-row file, on top of the rows being read)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def import_file_check_header(*, text: str) -> None:
    """Raises ImportRefused when the first line of `text` is not a header an import takes
    (the rest of the file is checked by the worker: `contacts_import_dataset`)."""
    text = text.removeprefix("\ufeff")
    end = text.find("\n")
    line = text[: end if end >= 0 else len(text)]
    try:
        _checked_header(next(csv.reader([line], delimiter=_delimiter(line)), []))
    except csv.Error as err:
        raise ImportRefused(f"The file is not valid CSV: {err}.") from err


def _delimiter(header_line: str) -> str:
    def known(delimiter):
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        return sum(cell.strip() in COLUMNS for cell in cells)

    return max(DELIMITERS, key=known)  # max keeps the first of equals: the comma


def _checked_header(cells: list[str]) -> list[str]:
    header = [cell.strip() for cell in cells]
    known = ", ".join(COLUMNS)
    if not any(name in COLUMNS for name in header):
        raise ImportRefused(
            "The header names no known column (is the file comma- or semicolon-separated, "
            f"with the column names on its first line?). The columns are: {known}."
        )
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise ImportRefused(f"Unknown column {listed}. The columns are: {known}.")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        listed = ", ".join(repr(name) for name in duplicates)
        raise ImportRefused(f"The column {listed} is in the header more than once.")
    if not any(name in header for name in MATCH_COLUMNS):
        raise ImportRefused(
            "The header needs an external_id or an email column: rows are matched on them."
        )
    return header


def contacts_import_validate(*, dataset: tablib.Dataset, user=None) -> Result:
    """Every row checked, nothing written and no transaction opened (the preview)."""
    return ContactResource().import_data(dataset, dry_run=True, raise_errors=False, user=user)


def contacts_import(
    *,
    dataset: tablib.Dataset,
    user=None,
    start_row: int = 1,
    after_chunk: Callable[[Result], None] | None = None,
) -> ImportOutcome:
    """Import the rows from `start_row` on (1 is the first row under the header).

    First every one of them is validated, nothing written. Only when no row has an error
    are they written, IMPORT_CHUNK_ROWS per transaction; `after_chunk(result)` is called
    after each commit. Push on save is held back meanwhile, and each contact written is
    queued once at the end (`contacts.signals`), also after a failure. A chunk that fails
    (a row that became invalid since the validation, a database error) is rolled back and
    the import stops: the outcome says which row failed and from which row to resume."""
    outcome = ImportOutcome(total_rows=len(dataset), written_rows=start_row - 1)
    rows = _rows(dataset, start_row - 1, len(dataset))
    validation = contacts_import_validate(dataset=rows, user=user)
    if validation.has_errors() or validation.has_validation_errors():
        outcome.validation = validation
        return outcome
    touched: set[int] = set()
    try:
        for first in range(start_row - 1, len(dataset), settings.IMPORT_CHUNK_ROWS):
            chunk = _rows(dataset, first, first + settings.IMPORT_CHUNK_ROWS)
            result, held = _write_chunk(chunk, user, retain=after_chunk is not None)
            if isinstance(result, str) or result.has_errors() or result.has_validation_errors():
                outcome.failed_row, outcome.failure = _first_failure(result, first)
                break
            touched |= held
            outcome.written_rows = first + len(chunk)
            outcome.totals.update(result.totals)
            if after_chunk is not None:
                after_chunk(result)
    finally:
        if touched:
            user_id = getattr(user, "pk", None)
            contacts_bulk_written.send(sender=Contact, contact_ids=touched, user_id=user_id)
    return outcome


def _write_chunk(chunk, user, retain) -> tuple[Result | str, set[int]]:
    """One chunk in one transaction, rolled back on any row's error. Returns the result (or
    the database's message when the commit itself failed) and the contacts it saved."""
    held: set[int] = set()
    token = held_contact_ids.set(held)
    try:
        result = ContactResource().import_data(
            chunk,
            dry_run=False,
            use_transactions=True,
            rollback_on_validation_errors=True,
            raise_errors=False,
            user=user,
            retain_instance_in_row_result=retain,
        )
    except DatabaseError as err:
        return f"The database refused the write: {err}", held
    finally:
        held_contact_ids.reset(token)
    return result, held


def _first_failure(result: Result | str, offset: int) -> tuple[int, str]:
    """(the file's row number, the message) of the first failed row of a chunk."""
    if isinstance(result, str):
        return offset + 1, result
    failures = [(number, str(errors[0].error)) for number, errors in result.row_errors()]
    for row in result.invalid_rows:
        messages = [f"{name}: {' '.join(m)}" for name, m in row.field_specific_errors.items()]
        failures.append((row.number, "; ".join(messages + row.non_field_specific_errors)))
    number, message = min(failures)
    return offset + number, message


def _rows(dataset: tablib.Dataset, start: int, stop: int) -> tablib.Dataset:
    """Rows start..stop-1 (0-based) of the dataset, under its header."""
    return tablib.Dataset(*dataset[start:stop], headers=dataset.headers)


def _megabytes(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size:,} bytes"
    return f"{size / (1024 * 1024):.1f} MB"


# ------------------------------------------------------------------------- stored files


def import_files_erase(*, needles: list[str]) -> int:
    """Remove the import files waiting between a preview and its confirmation that hold any
    of `needles` (a person's email or external ID); returns how many were removed: the
    background imports' stored files (ImportJob, in the database) and the in-request
    preview's files.

    Where they are depends on IMPORT_EXPORT_TMP_STORAGE_CLASS: django-import-export's
    TempFolderStorage writes `tmp*` files in the system's temporary folder, MediaStorage
    files in the storage's `django-import-export` folder. CacheStorage entries cannot be
    listed: they expire after a day (its CACHE_LIFETIME), and are not searched."""
    needles = [n.lower() for n in needles if n]
    storage_class = settings.IMPORT_EXPORT_TMP_STORAGE_CLASS
    if not needles:
        return 0
    removed = _erase_import_jobs(needles)
    if storage_class.endswith("TempFolderStorage"):
        return removed + _erase_temp_files(needles)
    if storage_class.endswith("MediaStorage"):
        return removed + _erase_media_files(needles)
    return removed


def _erase_import_jobs(needles: list[str]) -> int:
    """Background imports (ImportJob) whose stored file, preview or invalid rows name the
    person: deleted whole (their counts mean nothing without the rows). A job still running
    finds its row gone and stops writing; the tombstone refuses the person's rows."""
    holding = Q()
    for needle in needles:
        for name in ("content", "preview_json", "invalid_json"):
            holding |= Q(**{f"{name}__icontains": needle})
    ids = list(ImportJob.objects.filter(holding).values_list("pk", flat=True))
    ImportJob.objects.filter(pk__in=ids).delete()
    return len(ids)


def _holds(data: bytes, needles: list[str]) -> bool:
    text = data.decode("utf-8", errors="replace").lower()
    return any(needle in text for needle in needles)


def _erase_temp_files(needles: list[str]) -> int:
    removed = 0
    folder = tempfile.gettempdir()
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith("tmp") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_uid != os.getuid() or info.st_size > settings.IMPORT_MAX_BYTES:
                    continue
                with open(entry.path, "rb") as file:
                    if _holds(file.read(), needles):
                        os.remove(entry.path)
                        removed += 1
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return removed


def _erase_media_files(needles: list[str]) -> int:
    from import_export.tmp_storages import MediaStorage

    storage = MediaStorage()
    folder = storage.MEDIA_FOLDER
    try:
        _, names = storage._storage.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = f"{folder}/{name}"
        with storage._storage.open(path, "rb") as file:
            held = _holds(file.read(), needles)
        if held:
            storage._storage.delete(path)
            removed += 1
    return removed


# ------------------------------------------------------------------ background imports

PREVIEW_PAGE_ROWS = 50  # rows of the file shown on the progress page's preview
SCAN_CHUNK_ROWS = 1000  # rows checked per call of the library: memory stays bounded
SHOWN_CLEARINGS = 50


@dataclass
class ImportScan:
    """What checking a file found, gathered chunk by chunk without keeping the library's
    result of every row: the invalid rows (their cells and errors), the first rows of the
    file as the preview shows them, the blank cells that would clear a stored value (the
    first SHOWN_CLEARINGS) and their number, and the new/update/skip counts."""

    checked_rows: int = 0
    invalid: list[dict] = field(default_factory=list)
    page: list[dict] = field(default_factory=list)
    clearings: list[dict] = field(default_factory=list)
    clearing_count: int = 0
    totals: Counter = field(default_factory=Counter)
    headers: list[str] = field(default_factory=list)

    @property
    def invalid_numbers(self) -> set[int]:
        return {row["row"] for row in self.invalid}


def contacts_import_scan(
    *,
    dataset: tablib.Dataset,
    user=None,
    start_row: int = 1,
    page_rows: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> ImportScan:
    """Check every row from `start_row` on, nothing written and no transaction opened, in
    chunks of SCAN_CHUNK_ROWS with one resource (`ContactResource.begin_file`: the checks
    across rows see the whole file). Each chunk is checked in bulk
    (`ContactResource.check_rows`: its contacts and their groups read in three queries, no
    per-row diff). `on_progress(rows checked)` is called after each chunk. Row numbers are the
    file's (1 is the first row under the header)."""
    scan = ImportScan()
    headers = [str(h) for h in dataset.headers]
    # the whole file: no copy of its rows (a 100,000-row file's copy is tens of megabytes)
    rows = dataset if start_row == 1 else _rows(dataset, start_row - 1, len(dataset))
    resource = ContactResource()
    resource.begin_file(rows)
    for first in range(0, len(rows), SCAN_CHUNK_ROWS):
        chunk = _rows(rows, first, first + SCAN_CHUNK_ROWS)
        offset = start_row - 1 + first
        resource.row_offset = offset
        for check in resource.check_rows(chunk):
            number = offset + check.number
            shown = check.kind == "invalid" or len(scan.page) < page_rows
            cells = _cells(chunk, check) if shown else []
            if check.kind == "invalid":
                scan.invalid.append({"row": number, "cells": cells, "errors": check.errors})
            else:
                scan.totals[check.kind] += 1
                scan.clearing_count += len(check.cleared)
                for column, was in check.cleared.items():
                    if len(scan.clearings) < SHOWN_CLEARINGS:
                        scan.clearings.append({"row": number, "column": column, "was": was})
            if len(scan.page) < page_rows:
                scan.page.append(
                    {
                        "row": number,
                        "type": check.kind,
                        "cells": cells,
                        "errors": check.errors,
                        "cleared": check.cleared,
                    }
                )
        scan.checked_rows = first + len(chunk)
        if on_progress is not None:
            on_progress(scan.checked_rows)
    scan.headers = headers
    return scan


class ChunkRefused(Exception):
    """A row of a chunk failed its check at write time (the database changed since the
    check of the file): nothing of the chunk is written. `index` is the row's, from 1."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def contacts_import_write_chunk(
    *,
    chunk: tablib.Dataset,
    user=None,
    resource: ContactResource | None = None,
    values_checked: bool = False,
) -> tuple[Counter, set[int], list[RowCheck]]:
    """Write one chunk of rows in one transaction, in bulk: the rows are checked inside it
    (`ContactResource.check_rows`: the contacts read in two queries), then the new contacts
    are inserted, the changed ones updated (only the columns the rows change, the version
    counter raised as `Contact.save` raises it), each with its history record as
    django-simple-history writes it on a save (the importing user as its author), and the
    groups the rows add inserted with theirs (`contacts.bulk`: a few statements per chunk).

    Without `resource`, the rows were all found valid a moment ago (all or nothing: the
    whole file was checked first) and are checked again here against the database only; the
    chunk is refused whole, ChunkRefused, when a row became invalid. With `resource` (the
    file's, `ContactResource.begin_file`, its `row_offset` at this chunk), invalid rows are
    skipped: this check is the import's only one, and its invalid rows are returned, not
    written. `values_checked`: the file's values passed their own validators in its preview
    (`import_job_preview`, the same stored file), which would answer as they did; what the
    database answers is asked here in any case.

    Save signals are not sent: the caller queues the returned contacts' push once, at the
    end of the import. Returns the new/update/skip counts, the ids of the contacts written
    and the invalid rows' checks."""
    user_id = getattr(user, "pk", None)
    with transaction.atomic():
        if resource is None:
            checks = ContactResource().check_rows(chunk, values_checked=True)
            failed = next((c for c in checks if c.kind == "invalid"), None)
            if failed is not None:
                raise ChunkRefused(failed.number, _joined(failed.errors))
        else:
            checks = resource.check_rows(chunk, values_checked=values_checked)
        invalid = [c for c in checks if c.kind == "invalid"]
        checks = [c for c in checks if c.kind != "invalid"]
        now = timezone.now()
        created = [c for c in checks if c.kind == "new"]
        updated = [c for c in checks if c.kind == "update"]
        before = _statuses_before(updated)
        _contacts_create([c.instance for c in created], user_id, now)
        _contacts_update(updated, user_id, now)
        _memberships_add(created + updated, user_id, now)
        consent_record_bulk_changes(
            changes=[(c.instance, before.get(c.instance.pk, {})) for c in created + updated],
            source=ConsentSource.IMPORT,
            source_label=f"import by {user.get_username()}" if user_id else "import",
            now=now,
        )
    totals = Counter(c.kind for c in checks)
    return totals, {c.instance.pk for c in created + updated}, invalid


def _statuses_before(checks) -> dict[int, dict[str, str]]:
    """The stored email and SMS statuses of the contacts these rows update (one query), for
    the consent ledger: an import's status change is an entry with the value it replaced."""
    ids = [c.instance.pk for c in checks if c.changed & set(STATUS_COLUMNS)]
    return {
        row.pop("pk"): row
        for row in Contact.objects.filter(pk__in=ids).values("pk", *STATUS_COLUMNS)
    }


def _joined(errors: dict[str, list[str]]) -> str:
    """ "column: message; …" as a failed write reports a row (its own errors last)."""
    parts = [f"{name}: {' '.join(m)}" for name, m in errors.items() if name]
    return "; ".join(parts + errors.get("", []))


def _contacts_create(contacts: list[Contact], user_id, now) -> None:
    for contact in contacts:
        if not contact.external_id:  # as Contact.save
            contact.external_id = new_external_id()
    bulk.rows_insert(model=Contact, objects=contacts)
    bulk.history_rows_insert(
        model=Contact, objects=contacts, history_type="+", user_id=user_id, now=now
    )


def _contacts_update(checks, user_id, now) -> None:
    if not checks:
        return
    contacts = [c.instance for c in checks]
    for contact in contacts:
        contact.updated_at = now  # auto_now, as a save sets it
    changed = sorted(set().union(*(c.changed for c in checks)) | {"updated_at"})
    bulk.rows_update(model=Contact, objects=contacts, attnames=changed, increment="content_version")
    bulk.history_rows_insert(
        model=Contact, objects=contacts, history_type="~", user_id=user_id, now=now
    )


def _memberships_add(checks, user_id, now) -> None:
    """The groups the rows add. No ContactChild.save (and its version bump): the contact's own
    write in this chunk raised its version."""
    added = [
        {"contact_id": c.instance.pk, "group_id": group.pk}
        for c in checks
        for group in c.added_groups
    ]
    for row, pk in zip(added, bulk.values_insert(model=GroupMembership, rows=added), strict=True):
        row["id"] = pk
    bulk.history_rows_insert(
        model=GroupMembership, objects=added, history_type="+", user_id=user_id, now=now
    )


def import_job_start(*, content: str, file_name: str, user=None) -> ImportJob:
    """Keep the uploaded file in the database and queue its check (the preview) for a
    worker; the job's page follows it. The job and its task are created together."""
    from contacts import tasks

    with transaction.atomic():
        job = ImportJob.objects.create(
            content=content,
            file_name=file_name[:255],
            created_by=user if getattr(user, "pk", None) else None,
        )
        tasks.preview_import.enqueue(job_id=job.pk)
    return job


def import_job_confirm(*, job: ImportJob, mode: str) -> bool:
    """Queue the import of a checked file, all or nothing or skipping the invalid rows, or
    (after a failure part-way) its resumption. False when the job is not in a state to
    be confirmed (a second click, another tab): nothing is queued twice."""
    from contacts import tasks

    if mode not in ImportJob.Mode.values:
        return False
    with transaction.atomic():
        confirmable = Q(status__in=[ImportJob.Status.PREVIEWED, ImportJob.Status.REFUSED]) | (
            Q(status=ImportJob.Status.FAILED) & ~Q(mode="")  # a failed import, not a check
        )
        started = (
            ImportJob.objects.filter(confirmable, pk=job.pk)
            .exclude(content="")
            .update(status=ImportJob.Status.IMPORTING, mode=mode, failure="", finished_at=None)
        )
        if started:
            tasks.run_import.enqueue(job_id=job.pk)
    return bool(started)


def import_job_run_here(*, content: str, file_name: str, user, mode: str) -> ImportJob:
    """A small file's import (under IMPORT_BACKGROUND_ROWS lines) with a background
    import's rules, run here, in the request: every row checked, then (skipping the invalid
    rows) the valid ones written in chunks and each contact queued for its push once. The
    job is kept, as a background one, for its page: the counts and the skipped rows' CSV."""
    job = ImportJob.objects.create(
        content=content,
        file_name=file_name[:255],
        created_by=user if getattr(user, "pk", None) else None,
        status=ImportJob.Status.IMPORTING,
        mode=mode,
    )
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _job_update(job_id: int, **values) -> int:
    """One short write: the worker's progress, seen by the page at its next refresh. 0 when
    the job is gone (erased: it named an erased person)."""
    return ImportJob.objects.filter(pk=job_id).update(updated_at=timezone.now(), **values)


PROGRESS_SECONDS = 1.0  # a check's rows-checked count is written at most this often


def _progress_writer(job_id: int) -> Callable[[int], None]:
    """`on_progress` for a check: the rows checked written on the job, at most once every
    PROGRESS_SECONDS (the page refreshes every few seconds; on SQLite each write rewrites
    the job's row with its stored file). The check's end writes the final count."""
    last = [float("-inf")]

    def write(checked: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            _job_update(job_id, validated_rows=checked)

    return write


def _job_without_file(job_id: int, status: str) -> ImportJob | None:
    """The job in `status`, its stored file left unread (`_job_file` reads it for the parse
    alone: the run then holds the parsed rows, not the text as well)."""
    return ImportJob.objects.filter(pk=job_id, status=status).defer("content").first()


def _job_file(job_id: int) -> str:
    return ImportJob.objects.filter(pk=job_id).values_list("content", flat=True).first() or ""


def _job_user(job: ImportJob):
    return job.created_by


def import_job_preview(*, job_id: int) -> None:
    """Worker side: read the stored file and check every row (nothing written); record the
    counts, the invalid rows, the first page of rows and the clearings for the page."""
    job = _job_without_file(job_id, ImportJob.Status.PREVIEWING)
    if job is None:
        return
    try:
        dataset = contacts_import_dataset(text=_job_file(job_id))
        _job_update(job_id, total_rows=len(dataset))
        scan = contacts_import_scan(
            dataset=dataset,
            user=_job_user(job),
            page_rows=PREVIEW_PAGE_ROWS,
            on_progress=_progress_writer(job_id),
        )
    except ImportRefused as err:
        _job_finish(job_id, status=ImportJob.Status.FAILED, failure=str(err))
        return
    except Exception as err:  # the page says why; the stored file stays
        logger.exception("the check of import %s failed", job_id)
        _job_finish(job_id, status=ImportJob.Status.FAILED, failure=f"The check stopped: {err}")
        return
    _job_update(
        job_id,
        status=ImportJob.Status.PREVIEWED,
        validated_rows=scan.checked_rows,
        invalid_rows=len(scan.invalid),
        clearings=scan.clearing_count,
        totals=_counts(scan.totals),
        preview_json=_dumps(
            {"headers": scan.headers, "page": scan.page, "clearings": scan.clearings}
        ),
        invalid_json=_dumps(scan.invalid),
    )


def import_job_run(*, job_id: int) -> None:
    """Worker side: the confirmed import, from the resume row on, written in chunks of
    IMPORT_BACKGROUND_CHUNK_ROWS, one short transaction each, push on save held back and
    each contact queued once at the end (also after a failure).

    All or nothing: every row is checked first, nothing written, and nothing is written when
    a row is invalid; each chunk is then checked again against the database inside its
    transaction. Skipping the invalid rows: one pass, each chunk's rows checked inside its
    transaction (the check that counts, edits made since the preview included: the contacts,
    the emails taken, tombstones and groups; the values' own validators only when the file
    had no preview) and its valid rows written; the invalid ones are listed for the page and
    its CSV (after a resume, with those the job listed before the resume row). A failed chunk
    is rolled back and the import stops; the file stays stored, and the page offers to resume
    from that chunk."""
    job = _job_without_file(job_id, ImportJob.Status.IMPORTING)
    if job is None:
        return
    user = _job_user(job)
    start_row = job.start_row or 1
    skipping = job.mode == ImportJob.Mode.SKIP
    # Its values passed their own validators in the worker's preview of this stored file (a
    # file imported in the request, `import_job_run_here`, had no such preview here).
    previewed = bool(job.preview_json)
    step = settings.IMPORT_BACKGROUND_CHUNK_ROWS
    try:
        dataset = contacts_import_dataset(text=_job_file(job_id))
        if skipping:
            _job_update(job_id, total_rows=len(dataset), validated_rows=start_row - 1)
            resource = ContactResource()  # the file's: checks across rows see all of it
            resource.begin_file(
                dataset if start_row == 1 else _rows(dataset, start_row - 1, len(dataset))
            )
            numbers = list(range(start_row, len(dataset) + 1))
            invalid = [row for row in import_job_invalid_rows(job=job) if row["row"] < start_row]
        else:
            resource, invalid = None, []  # none: a file with one is not written
            numbers = _checked_all(job_id, dataset, user, start_row)
    except Exception as err:
        logger.exception("the check of import %s failed", job_id)
        _job_finish(job_id, status=ImportJob.Status.FAILED, failure=f"The check stopped: {err}")
        return
    if numbers is None:
        # the file stays: the person may choose to skip the invalid rows instead
        _job_finish(job_id, status=ImportJob.Status.REFUSED)
        return
    resuming = start_row > 1
    totals = Counter(job.totals if resuming else {})
    written = job.written_rows if resuming else 0
    touched: set[int] = set()
    failure = None
    chunk_numbers: list[int] = numbers[:1]
    try:
        for first in range(0, len(numbers), step):
            chunk_numbers = numbers[first : first + step]
            chunk = tablib.Dataset(
                *(dataset[n - 1] for n in chunk_numbers), headers=dataset.headers
            )
            if resource is not None:
                resource.row_offset = chunk_numbers[0] - 1  # the chunk's rows follow on
            # The chunk and the job's progress commit together: a worker killed at any
            # point leaves `start_row` just after the last chunk written, where a resume
            # goes on (`import_jobs_recover`), and every contact it wrote no later than the
            # job's `updated_at`.
            try:
                with transaction.atomic():
                    counts, held, refused = contacts_import_write_chunk(
                        chunk=chunk, user=user, resource=resource, values_checked=previewed
                    )
                    found = [_invalid_row(check, chunk, chunk_numbers) for check in refused]
                    chunk_totals = totals + counts
                    progress = {"validated_rows": chunk_numbers[-1]} if skipping else {}
                    kept = _job_update(
                        job_id,
                        written_rows=written + len(chunk_numbers) - len(found),
                        totals=_counts(chunk_totals),
                        start_row=chunk_numbers[-1] + 1,
                        **progress,
                    )
            except ChunkRefused as refused_chunk:
                row = chunk_numbers[refused_chunk.index - 1]
                failure = (chunk_numbers[0], row, str(refused_chunk))
                break
            except DatabaseError as err:
                message = f"The database refused the write: {err}"
                failure = (chunk_numbers[0], chunk_numbers[0], message)
                break
            touched |= held
            if not kept:
                return  # erased meanwhile: nothing more is written (the finally pushes)
            totals = chunk_totals
            written += len(chunk_numbers) - len(found)
            invalid += found
    except Exception as err:  # the page says why; the stored file stays, to resume
        logger.exception("import %s failed while writing", job_id)
        row = chunk_numbers[0] if chunk_numbers else start_row
        failure = (row, row, str(err))
    finally:
        if touched:
            user_id = getattr(user, "pk", None)
            contacts_bulk_written.send(sender=Contact, contact_ids=touched, user_id=user_id)
    listed = {"invalid_rows": len(invalid), "invalid_json": _dumps(invalid)} if skipping else {}
    if failure is not None:
        resume, row, message = failure
        _job_finish(
            job_id,
            status=ImportJob.Status.FAILED,
            start_row=resume,
            written_rows=written,
            totals=_counts(totals),
            failure=(
                f"Row {row} could not be saved: {message}. The rows before row {resume} are "
                f"saved; nothing from row {resume} on. Correct the cause and resume."
            ),
            **listed,
        )
        return
    _job_finish(
        job_id,
        status=ImportJob.Status.DONE,
        written_rows=written,
        totals=_counts(totals),
        content="",
        start_row=1,
        **listed,
    )


def _checked_all(job_id: int, dataset, user, start_row: int) -> list[int] | None:
    """All or nothing: every row from `start_row` on checked before anything is written.
    The numbers of the rows to write, or None when a row is invalid (then listed on the
    job)."""
    _job_update(job_id, total_rows=len(dataset), validated_rows=0)
    scan = contacts_import_scan(
        dataset=dataset,
        user=user,
        start_row=start_row,
        on_progress=_progress_writer(job_id),
    )
    _job_update(
        job_id,
        validated_rows=scan.checked_rows,
        invalid_rows=len(scan.invalid),
        invalid_json=_dumps(scan.invalid),
    )
    if scan.invalid:
        return None
    return list(range(start_row, len(dataset) + 1))


def _invalid_row(check: RowCheck, chunk: tablib.Dataset, numbers: list[int]) -> dict:
    """An invalid row of a written chunk as the job lists it (as `contacts_import_scan`)."""
    return {"row": numbers[check.number - 1], "cells": _cells(chunk, check), "errors": check.errors}


def _cells(chunk: tablib.Dataset, check: RowCheck) -> list[str]:
    """The row's cells as text, as the page and the skipped rows' CSV show them."""
    return [str(c) if c is not None else "" for c in chunk[check.number - 1]]


def _import_tasks(job_id: int):
    """The task rows (django-tasks-db) that checked or wrote this job, newest first."""
    from contacts import tasks

    paths = [tasks.preview_import.module_path, tasks.run_import.module_path]
    return DBTaskResult.objects.filter(task_path__in=paths, args_kwargs__kwargs__job_id=job_id)


def import_task_progressing(*, task_path: str, kwargs: dict, since) -> bool:
    """Whether a task row is an import's whose job wrote progress since `since`: a worker
    checking or writing a long file is alive though its task runs past the lease (the
    scheduler's `tasks_fail_abandoned` asks, before marking a task abandoned)."""
    from contacts import tasks

    if task_path not in (tasks.preview_import.module_path, tasks.run_import.module_path):
        return False
    return ImportJob.objects.filter(pk=kwargs.get("job_id"), updated_at__gte=since).exists()


def import_jobs_recover(*, now=None) -> int:
    """Scheduler side: an import whose worker stopped (killed, its machine gone) stays
    "checking" or "importing" for ever, its task row marked failed as abandoned by
    `tasks_fail_abandoned`. A job with no progress for the lease (SYNC_LEASE_SECONDS) and
    no task still queued or running for it is marked failed here, so its page says so:
    - a check (the preview): nothing was written; the person uploads the file again;
    - an import: the chunks written are saved (each committed with the job's progress, so
      `start_row` is the row after the last one); the page offers "Resume import" from
      there. The contacts those chunks wrote were never queued for their push (that
      happens at the end of a run): they are queued now, found by the time they were
      written (from the task's start to the job's last progress; a person's save in that
      window is pushed again, which an unchanged contact makes no request for).
    Returns how many jobs were marked."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    running = [ImportJob.Status.PREVIEWING, ImportJob.Status.IMPORTING]
    alive = [TaskResultStatus.READY, TaskResultStatus.RUNNING]
    marked = 0
    for job in ImportJob.objects.filter(status__in=running, updated_at__lt=stale):
        tasks = _import_tasks(job.pk)
        if tasks.filter(status__in=alive).exists():
            continue  # queued (waiting for a worker: the page says so) or still running
        if _job_abandon(job, now):
            marked += 1
            last = tasks.exclude(started_at=None).order_by("-started_at").first()
            if job.status == ImportJob.Status.IMPORTING and last is not None:
                _queue_pushes_written(job, since=last.started_at)
    return marked


def _job_abandon(job: ImportJob, now) -> bool:
    """Mark one job failed (unless it moved on meanwhile), saying where it stopped."""
    if job.status == ImportJob.Status.PREVIEWING:
        failure = (
            "The check stopped: the worker checking this file stopped before the end. Nothing "
            "was imported. Upload the file again."
        )
    else:
        failure = (
            f"The import stopped: the worker writing it stopped after {job.written_rows} "
            f"rows. The rows before row {job.start_row} are saved; resume to import the rest."
        )
    updated = ImportJob.objects.filter(
        pk=job.pk, status=job.status, updated_at=job.updated_at
    ).update(status=ImportJob.Status.FAILED, failure=failure, finished_at=now, updated_at=now)
    if updated:
        logger.warning("import %s marked failed: %s", job.pk, failure)
    return bool(updated)


def _queue_pushes_written(job: ImportJob, *, since) -> None:
    ids = set(
        Contact.objects.filter(updated_at__gte=since, updated_at__lte=job.updated_at).values_list(
            "pk", flat=True
        )
    )
    if ids:
        user_id = job.created_by_id
        contacts_bulk_written.send(sender=Contact, contact_ids=ids, user_id=user_id)


def _counts(totals: Counter) -> dict:
    """new / update / skip counts, those above zero (the library's totals list every kind)."""
    return {kind: count for kind, count in totals.items() if count}


def _job_finish(job_id: int, **values) -> None:
    _job_update(job_id, finished_at=timezone.now(), **values)


def import_job_invalid_rows(*, job: ImportJob) -> list[dict]:
    return json.loads(job.invalid_json) if job.invalid_json else []


def import_job_preview_data(*, job: ImportJob) -> dict:
    return json.loads(job.preview_json) if job.preview_json else {}


def import_job_skipped_csv(*, job: ImportJob) -> str:
    """The invalid rows as CSV: the file's header, then `row` (its number in the file) and
    `errors` ("column: message" joined by " | "), each value formula-guarded like an
    export (a spreadsheet opens it)."""
    headers = import_job_preview_data(job=job).get("headers", [])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", *headers, "errors"])
    for row in import_job_invalid_rows(job=job):
        errors = " | ".join(
            f"{column}: {message}" if column else message
            for column, messages in row["errors"].items()
            for message in messages
        )
        cells = [neutralise_formula(cell) for cell in row["cells"]]
        writer.writerow([row["row"], *cells, neutralise_formula(errors)])
    return out.getvalue()


def _dumps(value) -> str:
    # ensure_ascii off: the erasure searches the text for a person's email as written
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
