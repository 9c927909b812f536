"""Importing contacts from CSV, outside any request: read a bounded file, validate every row
(nothing written), then write the rows in short transactions.

The admin's import pages are adapters over these functions; a background import can call
them the same way. Limits are read from settings at each call: `IMPORT_MAX_BYTES`,
`IMPORT_MAX_ROWS` and `IMPORT_CHUNK_ROWS`.
"""

import csv
import io
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import tablib
from django.conf import settings
from django.db import DatabaseError
from import_export.results import Result

from contacts.models import Contact
from contacts.resources import COLUMNS, ContactResource
from contacts.signals import contacts_bulk_written, held_contact_ids

MATCH_COLUMNS = ("external_id", "email")  # a row is matched on these; one is required
DELIMITERS = (",", ";", "\t", "|")  # comma first: it wins a tie


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
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
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
    of `needles` (a person's email or external ID); returns how many were removed.

    Where they are depends on IMPORT_EXPORT_TMP_STORAGE_CLASS: django-import-export's
    TempFolderStorage writes `tmp*` files in the system's temporary folder, MediaStorage
    files in the storage's `django-import-export` folder. CacheStorage entries cannot be
    listed: they expire after a day (its CACHE_LIFETIME), and are not searched."""
    needles = [n.lower() for n in needles if n]
    storage_class = settings.IMPORT_EXPORT_TMP_STORAGE_CLASS
    if not needles:
        return 0
    if storage_class.endswith("TempFolderStorage"):
        return _erase_temp_files(needles)
    if storage_class.endswith("MediaStorage"):
        return _erase_media_files(needles)
    return 0


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
