"""The import preview's invalid rows, cell by cell: each value with the errors of its column,
so that the preview can show an error on its cell as well as in the list above the table."""

import re

from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def import_cells(row, headers) -> list[dict]:
    """[{"header", "value", "errors"}] for one invalid row of django-import-export's result
    (its `values` are in the order of `result.diff_headers`, which are our column names)."""
    errors = {
        str(name): [str(e) for e in found] for name, found in row.field_specific_errors.items()
    }
    return [
        {"header": str(header), "value": value, "errors": errors.get(str(header), [])}
        for header, value in zip(headers, row.values, strict=False)
    ]


@register.filter
def import_error_list(result) -> list[dict]:
    """Every error of the invalid rows, one entry per row and column, for the list above the
    table: {"row", "column" (blank for a row's own error), "errors"}."""
    found = []
    for row in getattr(result, "invalid_rows", ()):
        for name, errors in row.field_specific_errors.items():
            found.append(
                {"row": row.number, "column": str(name), "errors": [str(e) for e in errors]}
            )
        for error in row.non_field_specific_errors:
            found.append({"row": row.number, "column": "", "errors": [str(error)]})
    return found


CLEARED = re.compile(r"<del[^>]*>(?P<was>.*)</del>", re.S)


@register.filter
def import_clearings(result) -> list[dict]:
    """The cells of a previewed import that would clear a stored value (a blank cell over a
    value the contact has), for the notice shown before the person confirms:
    {"row", "column", "was"}. Read from the preview's diff, where a value wholly removed is
    one <del> and nothing else (django-import-export's Diff.as_html); the rows of a preview
    with no invalid row are the file's rows, in order."""
    found = []
    if not hasattr(result, "valid_rows"):  # no preview on this page
        return found
    for number, row in enumerate(result.valid_rows(), start=1):
        for header, cell in zip(result.diff_headers, row.diff or (), strict=False):
            match = CLEARED.fullmatch(str(cell).strip())
            if match and "<del" not in match["was"]:
                found.append({"row": number, "column": str(header), "was": mark_safe(match["was"])})
    return found
