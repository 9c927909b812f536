"""The import preview's invalid rows, cell by cell: each value with the errors of its column,
so that the preview can show an error on its cell as well as in the list above the table."""

from django import template

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
    for row in result.invalid_rows:
        for name, errors in row.field_specific_errors.items():
            found.append(
                {"row": row.number, "column": str(name), "errors": [str(e) for e in errors]}
            )
        for error in row.non_field_specific_errors:
            found.append({"row": row.number, "column": "", "errors": [str(error)]})
    return found
