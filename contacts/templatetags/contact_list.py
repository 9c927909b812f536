"""The contact list's rows, built as django-unfold builds them but with what is the same
for every row worked out once per page.

unfold 0.91.0's `items_for_result` rebuilds every header (labels, sort links and the
"select all" checkbox, a template render) for each row, only to read each header's text
for the cell's `data-label`, and joins each cell's 26 classes again: a quarter of a 100-row
page's Python work. `contact_result_list` builds the headers once, `page_columns` what each
column's cells share, and `items_for_result` below is unfold's function taking them; the
HTML is the same (tests/contacts/test_contact_list_rows.py compares the two on the same
page, so an unfold upgrade that changes its cells fails there).
"""

import datetime
from dataclasses import dataclass

from django.contrib.admin.templatetags.admin_list import (
    _coerce_field_name,
    result_hidden_fields,
)
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.utils import lookup_field
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.template import Library
from django.template.loader import render_to_string
from django.urls import NoReverseMatch
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from unfold.templatetags.unfold_list import (
    CHECKBOX_CLASSES,
    LINK_CLASSES,
    ROW_CLASSES,
    UnfoldResultList,
    result_headers,
)
from unfold.utils import (
    display_for_dropdown,
    display_for_field,
    display_for_header,
    display_for_label,
    display_for_value,
)

register = Library()


def contact_result_list(context, cl) -> dict:
    """unfold's `result_list` context, its rows from `results` below."""
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": list(results(cl, page_columns(cl, headers))),
        "actions_row": context.get("actions_row"),
        "has_add_permission": cl.model_admin.has_add_permission(context["request"]),
    }


@register.tag(name="contact_result_list")
def contact_result_list_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=contact_result_list, template_name="change_list_results.html"
    )


@dataclass(frozen=True)
class Column:
    """What a column's cells share on a page."""

    name: object  # as in cl.list_display: a field's or method's name, or a callable
    classes: str  # the cell's classes, before those its value adds
    label: str  # its data-label, escaped
    link_tag: str  # "th" or "td" for the cell that links to the record, else ""


def page_columns(cl, headers) -> list[Column]:
    """A Column per entry of `cl.list_display`, from the page's `result_headers(cl)`."""
    ordering_field = getattr(cl.model_admin, "ordering_field", None)
    hide_ordering_field = getattr(cl.model_admin, "hide_ordering_field", False)
    columns, first = [], True
    for index, name in enumerate(cl.list_display):
        classes = [f"field-{_coerce_field_name(name, index)}", *ROW_CLASSES]
        link_tag = ""
        if _link_in_col(first, name, cl):
            link_tag = "th" if first else "td"
            first = False
        elif ordering_field and name == ordering_field and hide_ordering_field:
            classes.append("!hidden")
        label = headers[index]["text"] if index != 0 or link_tag else _("Select record")
        columns.append(Column(name, " ".join(classes), str(conditional_escape(label)), link_tag))
    return columns


def _link_in_col(is_first, field_name, cl) -> bool:
    if cl.list_display_links is None:
        return False
    if is_first and not cl.list_display_links:
        return True
    return field_name in cl.list_display_links


def results(cl, columns):
    """unfold's `results`, the page's columns passed to each row."""
    if getattr(cl, "formset", None):
        for result, form in zip(cl.result_list, cl.formset.forms, strict=False):
            yield UnfoldResultList(result, form, items_for_result(cl, result, form, columns))
    else:
        for result in cl.result_list:
            yield UnfoldResultList(result, None, items_for_result(cl, result, None, columns))


def items_for_result(cl, result, form, columns):
    """unfold 0.91.0's `items_for_result` (templatetags/unfold_list.py), what is the same
    for every row taken from `columns` (`page_columns`). A cell per column, as HTML."""
    empty_value_display = cl.model_admin.get_empty_value_display()
    for column in columns:
        classes, result_repr = _cell_value(cl, result, column, empty_value_display)
        if column.link_tag:
            yield _link_cell(cl, result, column, classes, result_repr)
            continue
        if (
            form
            and column.name in form.fields
            and not (
                column.name == cl.model._meta.pk.name and form[cl.model._meta.pk.name].is_hidden
            )
        ):
            bf = form[column.name]
            result_repr = mark_safe(
                str(bf) + render_to_string("unfold/helpers/form_errors.html", {"errors": bf.errors})
            )
            classes += " group errors" if bf.errors else ""
        yield mark_safe(
            f'<td class="{classes}" data-label="{column.label}">'
            f"{conditional_escape(result_repr)}</td>"
        )

    if form and not form[cl.model._meta.pk.name].is_hidden:
        yield format_html("<td>{}</td>", form[cl.model._meta.pk.name])


CHECKBOX_CLASS_NAMES = " ".join(CHECKBOX_CLASSES)


def _cell_value(cl, result, column, empty_value_display) -> tuple[str, object]:
    """(the cell's classes, its value as unfold shows it)."""
    classes = column.classes
    try:
        f, attr, value = lookup_field(column.name, result, cl.model_admin)
    except ObjectDoesNotExist:
        return classes, empty_value_display
    empty_value_display = getattr(attr, "empty_value_display", empty_value_display)
    if f is None or f.auto_created:
        if column.name == "action_checkbox":
            classes = CHECKBOX_CLASS_NAMES
        if getattr(attr, "label", False):
            result_repr = display_for_label(value, empty_value_display, attr.label)
        elif getattr(attr, "dropdown", False):
            result_repr = display_for_dropdown(result, column.name, value, empty_value_display)
        elif getattr(attr, "header", False):
            result_repr = display_for_header(value, empty_value_display)
        else:
            boolean = getattr(attr, "boolean", False)
            result_repr = display_for_value(value, empty_value_display, boolean)
        if isinstance(value, datetime.date | datetime.time):
            classes += " nowrap"
        return classes, result_repr
    if isinstance(f.remote_field, models.ManyToOneRel):
        field_val = getattr(result, f.name)
        result_repr = empty_value_display if field_val is None else field_val
    else:
        result_repr = display_for_field(value, f, empty_value_display)
    if isinstance(f, models.DateField | models.TimeField | models.ForeignKey):
        classes += " nowrap"
    return classes, result_repr


def _link_cell(cl, result, column, classes, result_repr) -> str:
    """The cell that links to the record's page (its value alone if it has none)."""
    try:
        url = cl.url_for_result(result)
    except NoReverseMatch:
        link_or_text = result_repr
    else:
        url = add_preserved_filters(
            {"preserved_filters": cl.preserved_filters, "opts": cl.opts}, url
        )
        value = result.serializable_value(
            str(cl.to_field) if cl.to_field else cl.lookup_opts.pk.attname
        )
        link_or_text = format_html(
            '<a href="{}" class="{}" {}>{}</a>',
            url,
            " ".join(LINK_CLASSES),
            format_html(' data-popup-opener="{}"', value) if cl.is_popup else "",
            result_repr,
        )
    tag = column.link_tag
    return mark_safe(
        f'<{tag} class="{classes}" data-label="{column.label}">'
        f"{conditional_escape(link_or_text)}</{tag}>"
    )
