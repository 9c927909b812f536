"""The contact list's rows, built as django-unfold builds them but with the column headers
made once per page.

unfold 0.91.0's `items_for_result` rebuilds every header (labels, sort links and the
"select all" checkbox, a template render) for each row, only to read each header's text
for the cell's `data-label`: a tenth of a 100-row page's Python work. `contact_result_list`
builds the headers once and passes them to `items_for_result` below, unfold's function with
that one change; the HTML is the same (tests/contacts/test_contact_list_rows.py compares
the two on the same page, so an unfold upgrade that changes its cells fails there).
"""

import datetime

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
from django.utils.html import format_html
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
        "results": list(results(cl, headers)),
        "actions_row": context.get("actions_row"),
        "has_add_permission": cl.model_admin.has_add_permission(context["request"]),
    }


@register.tag(name="contact_result_list")
def contact_result_list_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=contact_result_list, template_name="change_list_results.html"
    )


def results(cl, headers):
    """unfold's `results`, the page's headers passed to each row."""
    if getattr(cl, "formset", None):
        for result, form in zip(cl.result_list, cl.formset.forms, strict=False):
            yield UnfoldResultList(result, form, items_for_result(cl, result, form, headers))
    else:
        for result in cl.result_list:
            yield UnfoldResultList(result, None, items_for_result(cl, result, None, headers))


def items_for_result(cl, result, form, headers):  # noqa: C901, PLR0912, PLR0915
    """unfold 0.91.0's `items_for_result` (templatetags/unfold_list.py), unchanged but for
    `headers`, the page's column headers (`result_headers(cl)`), made once instead of for
    every row. A cell per column of `cl.list_display`, as HTML."""

    def link_in_col(is_first, field_name, cl):
        if cl.list_display_links is None:
            return False
        if is_first and not cl.list_display_links:
            return True
        return field_name in cl.list_display_links

    first = True
    pk = cl.lookup_opts.pk.attname
    empty_value_display = cl.model_admin.get_empty_value_display()
    ordering_field = getattr(cl.model_admin, "ordering_field", None)
    hide_ordering_field = getattr(cl.model_admin, "hide_ordering_field", False)

    for field_index, field_name in enumerate(cl.list_display):
        cell_empty_value_display = empty_value_display
        row_classes = [f"field-{_coerce_field_name(field_name, field_index)}", *ROW_CLASSES]

        try:
            f, attr, value = lookup_field(field_name, result, cl.model_admin)
        except ObjectDoesNotExist:
            result_repr = cell_empty_value_display
        else:
            cell_empty_value_display = getattr(
                attr, "empty_value_display", cell_empty_value_display
            )
            if f is None or f.auto_created:
                if field_name == "action_checkbox":
                    row_classes = CHECKBOX_CLASSES
                label = getattr(attr, "label", False)
                if label:
                    result_repr = display_for_label(value, cell_empty_value_display, label)
                elif getattr(attr, "dropdown", False):
                    result_repr = display_for_dropdown(
                        result, field_name, value, cell_empty_value_display
                    )
                elif getattr(attr, "header", False):
                    result_repr = display_for_header(value, cell_empty_value_display)
                else:
                    boolean = getattr(attr, "boolean", False)
                    result_repr = display_for_value(value, cell_empty_value_display, boolean)

                if isinstance(value, datetime.date | datetime.time):
                    row_classes.append("nowrap")
            else:
                if isinstance(f.remote_field, models.ManyToOneRel):
                    field_val = getattr(result, f.name)
                    result_repr = cell_empty_value_display if field_val is None else field_val
                else:
                    result_repr = display_for_field(value, f, cell_empty_value_display)
                if isinstance(f, models.DateField | models.TimeField | models.ForeignKey):
                    row_classes.append("nowrap")

        if link_in_col(first, field_name, cl):
            table_tag = "th" if first else "td"
            first = False
            try:
                url = cl.url_for_result(result)
            except NoReverseMatch:
                link_or_text = result_repr
            else:
                url = add_preserved_filters(
                    {"preserved_filters": cl.preserved_filters, "opts": cl.opts}, url
                )
                value = result.serializable_value(str(cl.to_field) if cl.to_field else pk)
                link_or_text = format_html(
                    '<a href="{}" class="{}" {}>{}</a>',
                    url,
                    " ".join(LINK_CLASSES),
                    format_html(' data-popup-opener="{}"', value) if cl.is_popup else "",
                    result_repr,
                )
            row_class = mark_safe(f' class="{" ".join(row_classes)}"')
            yield format_html(
                '<{}{} data-label="{}">{}</{}>',
                table_tag,
                row_class,
                headers[field_index]["text"],
                link_or_text,
                table_tag,
            )
        else:
            if (
                form
                and field_name in form.fields
                and not (
                    field_name == cl.model._meta.pk.name and form[cl.model._meta.pk.name].is_hidden
                )
            ):
                bf = form[field_name]
                result_repr = mark_safe(
                    str(bf)
                    + render_to_string("unfold/helpers/form_errors.html", {"errors": bf.errors})
                )
                row_classes += ["group", "errors"] if bf.errors else []

            if ordering_field and field_name == ordering_field and hide_ordering_field:
                row_classes.append("!hidden")

            row_class = mark_safe(f' class="{" ".join(row_classes)}"')
            label = headers[field_index]["text"] if field_index != 0 else _("Select record")
            yield format_html('<td{} data-label="{}">{}</td>', row_class, label, result_repr)

    if form and not form[cl.model._meta.pk.name].is_hidden:
        yield format_html("<td>{}</td>", form[cl.model._meta.pk.name])
