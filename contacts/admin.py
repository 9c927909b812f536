"""The admin marketing staff work in: contacts with their children inline, CSV import and
export, each contact's history, and the catalogues (custom fields, groups, mailing lists) on
their own pages."""

import datetime
import json
import re
from dataclasses import dataclass, field
from functools import cache

from django import forms as django_forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from import_export.admin import ExportActionMixin, ImportMixin
from import_export.formats.base_formats import CSV
from import_export.forms import ConfirmImportForm
from import_export.signals import post_import
from simple_history.admin import SimpleHistoryAdmin
from unfold import admin as unfold_admin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from contacts import forms
from contacts.consent import consent_record_admin_change
from contacts.models import (
    MAX_EXTERNAL_URLS,
    Channel,
    Contact,
    CustomFieldDefinition,
    CustomFieldValue,
    ExternalUrl,
    Group,
    GroupMembership,
    ImportJob,
    MailingList,
    MailingListSubscription,
)
from contacts.resources import ContactResource
from contacts.selectors import contact_consent_timeline, distinct_values
from contacts.services import (
    ImportOutcome,
    ImportRefused,
    contacts_import,
    contacts_import_dataset,
    import_file_check_header,
    import_file_check_size,
    import_job_confirm,
    import_job_invalid_rows,
    import_job_preview_data,
    import_job_run_here,
    import_job_skipped_csv,
    import_job_start,
)

SHOWN_INVALID_ROWS = 100  # on the job's page; the skipped-rows CSV has all of them

# Per child model: the field that names a row, then the fields whose changes are listed.
CHILD_HISTORY_FIELDS = {
    Channel: ("value", ["type", "value"]),
    CustomFieldValue: ("definition", ["definition", "value"]),
    GroupMembership: ("group", ["group"]),
    MailingListSubscription: ("mailing_list", ["mailing_list", "subscribed"]),
    ExternalUrl: ("ref", ["ref", "url", "label"]),
}
CATALOGUE_MODELS = {
    "definition": CustomFieldDefinition,
    "group": Group,
    "mailing_list": MailingList,
}
CHILD_HISTORY_LIMIT = 100


@dataclass
class ChildChange:
    """One historical record of a contact's child, ready for the history page."""

    date: datetime.datetime
    user: object | None  # the user who made it; None for a change made outside a request
    kind: str
    label: str
    change_type: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)


def contact_child_history(
    *, contact_id: int, limit: int = CHILD_HISTORY_LIMIT
) -> list[ChildChange]:
    """The latest `limit` changes to the contact's channels, custom field values, groups,
    mailing lists and external URLs, newest first, each with the fields it changed.

    A fixed number of queries: one per child model and one per catalogue named."""
    records = {
        model: list(
            model.history.filter(contact_id=contact_id)
            .select_related("history_user")
            .order_by("id", "history_date", "history_id")
        )
        for model in CHILD_HISTORY_FIELDS
    }
    names = _catalogue_names([r for rows in records.values() for r in rows])
    changes = []
    for model, rows in records.items():
        label_field, shown = CHILD_HISTORY_FIELDS[model]
        previous = None
        for record in rows:
            before = previous if previous is not None and previous.id == record.id else None
            changes.append(_child_change(model, record, before, label_field, shown, names))
            previous = record
    changes.sort(key=lambda change: change.date, reverse=True)
    return changes[:limit]


def _catalogue_names(records) -> dict[tuple[str, int], str]:
    ids: dict[str, set[int]] = {name: set() for name in CATALOGUE_MODELS}
    for record in records:
        for name in CATALOGUE_MODELS:
            value = getattr(record, f"{name}_id", None)
            if value is not None:
                ids[name].add(value)
    names = {}
    for name, model in CATALOGUE_MODELS.items():
        if ids[name]:
            for pk, label in model.objects.filter(pk__in=ids[name]).values_list("pk", "name"):
                names[name, pk] = label
    return names


def _child_change(model, record, before, label_field, shown, names) -> ChildChange:
    def display(rec, name):
        if rec is None:
            return ""
        if name in CATALOGUE_MODELS:
            pk = getattr(rec, f"{name}_id")
            return names.get((name, pk), f"#{pk} (deleted)") if pk is not None else ""
        value = getattr(rec, name)
        return str(dict(model._meta.get_field(name).flatchoices).get(value, value))

    changes = []
    for name in shown:
        verbose = str(model._meta.get_field(name).verbose_name)
        if record.history_type == "-":
            old, new = display(record, name), ""
        else:
            old, new = display(before, name), display(record, name)
        if old != new:
            changes.append((verbose, old, new))
    return ChildChange(
        date=record.history_date,
        user=record.history_user,
        kind=str(model._meta.verbose_name),
        label=display(record, label_field),
        change_type=record.get_history_type_display(),
        changes=changes,
    )


class NamedValuesFilter(admin.AllValuesFieldListFilter):
    """The values contacts have, shown by their names (Australia, English), not their codes;
    the query string keeps the code. The values are read by walking the column's index
    (`selectors.distinct_values`), not by a DISTINCT over the whole table: the contact list
    shows this filter on every view."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.model = model

    def choices(self, changelist):
        # Django's own (a DISTINCT queryset) is replaced when the filter renders, its only
        # reader: a list action's POST builds the filters too and reads nothing. Only for a
        # plain column of the listed model itself.
        self.lookup_choices = distinct_values(self.model, self.field_path)
        names = {str(value): str(label) for value, label in self.field.flatchoices}
        for choice in super().choices(changelist):
            choice["display"] = names.get(str(choice["display"]), choice["display"])
            yield choice


class CatalogueRowInline(TabularInline):
    """A row that points into a catalogue (custom fields, groups, lists): its caption names
    that entry, fetched in the same query as the rows rather than one query per row.

    Each inline here lists its `fields`, the ones Django would find: without the list the
    admin builds the inline's form class twice more on every view and save only to read its
    field names (`tests/contacts/test_widgets.py` checks the lists)."""

    caption_related = ""
    formset = forms.SharedChoicesFormSet
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(self.caption_related)


class ChannelInline(TabularInline):
    model = Channel
    form = forms.ChannelForm
    fields = ["type", "value"]
    formset = forms.ChannelFormSet
    extra = 0


class CustomFieldValueInline(CatalogueRowInline):
    model = CustomFieldValue
    fields = ["contact", "definition", "value"]
    caption_related = "definition"
    verbose_name = "custom field"


class GroupMembershipInline(CatalogueRowInline):
    model = GroupMembership
    fields = ["contact", "group"]
    caption_related = "group"
    verbose_name = "group"


class MailingListSubscriptionInline(CatalogueRowInline):
    model = MailingListSubscription
    fields = ["contact", "mailing_list", "subscribed"]
    caption_related = "mailing_list"
    verbose_name = "mailing list"


class ExternalUrlInline(TabularInline):
    model = ExternalUrl
    fields = ["contact", "ref", "url", "label"]
    formset = forms.ExternalUrlFormSet
    extra = 0
    max_num = MAX_EXTERNAL_URLS


class ContactCSV(CSV):
    """CSV read by `contacts_import_dataset`: bounded, its delimiter detected, its header
    checked (the library's reader takes any header and any number of rows)."""

    def create_dataset(self, in_stream, **kwargs):
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode(self.encoding or "utf-8-sig")
        return contacts_import_dataset(text=in_stream)


class ContactImportForm(ImportForm):
    def clean_import_file(self):
        import_file = self.cleaned_data["import_file"]
        try:
            import_file_check_size(size=import_file.size)  # before a byte of it is read
        except ImportRefused as err:
            raise django_forms.ValidationError(str(err)) from err
        return import_file


class ContactConfirmImportForm(ConfirmImportForm):
    # Set when a confirmed import failed part-way: the rows before it are saved.
    start_row = django_forms.IntegerField(
        widget=django_forms.HiddenInput, min_value=1, initial=1, required=False
    )


@cache
def _country_names() -> dict[str, str]:
    return dict(Contact._meta.get_field("country").flatchoices)


class EstimatedCountPaginator(Paginator):
    """The contact list's pages without counting a million contacts on every view: on
    PostgreSQL the count is the planner's estimate of the list's rows (EXPLAIN, from the
    statistics autovacuum's ANALYZE keeps) once that estimate passes ESTIMATE_FROM, a few
    percent off at most, which only the page count and the total shown can tell; COUNT(*)
    of a million contacts, or of those failed on a destination, takes most of a second.
    Smaller lists, and SQLite, whose tables this size are not, count exactly."""

    ESTIMATE_FROM = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        if hasattr(queryset, "explain") and connection.vendor == "postgresql":
            plan = json.loads(queryset.order_by().explain(format="json"))
            estimate = int(plan[0]["Plan"]["Plan Rows"])
            if estimate >= self.ESTIMATE_FROM:
                return estimate
        return super().count


@admin.register(Contact)
class ContactAdmin(ImportMixin, ExportActionMixin, SimpleHistoryAdmin, ModelAdmin):
    """Contacts with their children inline; CSV import (a preview that writes nothing, then
    the confirmed import in short transactions: `contacts.services`), the "Export selected"
    action, and the history page."""

    form = forms.ContactForm
    resource_classes = [ContactResource]
    formats = [ContactCSV]
    import_form_class = ContactImportForm
    export_form_class = ExportForm
    confirm_form_class = ContactConfirmImportForm
    import_template_name = "admin/contacts/contact/import.html"
    # the list page, its rows built with the headers made once a page (ImportMixin adds its
    # buttons around it)
    change_list_template = "admin/contacts/contact/change_list.html"
    object_history_template = "admin/contacts/contact/object_history.html"
    show_change_form_export = False
    list_display = [
        "__str__",
        "email",
        "phone",
        "short_external_id",
        "country_name",
        "subscriptions",
        "updated",
    ]
    list_filter = [
        "email_status",
        "sms_status",
        ("country", NamedValuesFilter),
        ("language", NamedValuesFilter),
        "groups",
    ]
    search_fields = ["first_name", "last_name", "email", "phone", "=external_id"]
    readonly_fields = ["created_at", "updated_at"]
    # At a million contacts a COUNT(*) per page view: the list shows "Show all" instead of
    # the unfiltered total next to a filtered count, and pages by an estimate when unfiltered.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # No expandable row sections (unfold's option). Declared because unfold's list template
    # asks for it twice a row, and a missing attribute costs Django's template engine a
    # dir() of the whole admin each time (a sixth of a 100-row page's time).
    list_sections = ()
    # No fields shown on a condition (unfold's option), declared for the same reason: the
    # change form asks for it once a field.
    conditional_fields = {}

    @admin.display(description=ModelAdmin.action_checkbox.short_description)
    def action_checkbox(self, obj):
        """unfold's row checkbox, the HTML its widget renders, without rendering the widget's
        template for each of 100 rows (a tenth of the page's time)."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}"{}>',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html_join("", ' {}="{}"', unfold_admin.checkbox.attrs.items()),
        )

    @admin.display(description="external ID", ordering="external_id")
    def short_external_id(self, obj):
        """Long generated IDs (ct-07e699…) would take a quarter of the list: the start, and
        the whole ID on hover."""
        value = obj.external_id
        if len(value) <= 12:
            return value
        return format_html(
            '<span title="{}" class="whitespace-nowrap">{}…</span>', value, value[:10]
        )

    @admin.display(description="country", ordering="country")
    def country_name(self, obj):
        """The country's name from a table built once: the field's own display rebuilds and
        sorts its 249 choices for every row (a third of a page's time)."""
        return _country_names().get(obj.country, obj.country) or "-"

    @admin.display(description="email / SMS", ordering="email_status")
    def subscriptions(self, obj):
        """Both subscription statuses in one cell, one a line: two columns would not fit."""
        return format_html(
            '<span class="whitespace-nowrap">{}</span><br>'
            '<span class="whitespace-nowrap">{}</span>',
            obj.get_email_status_display(),
            obj.get_sms_status_display(),
        )

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj):
        local = timezone.localtime(obj.updated_at)
        return format_html(
            '<time datetime="{}" class="whitespace-nowrap">{}<br>{}</time>',
            local.isoformat(),
            local.strftime("%Y-%m-%d"),
            local.strftime("%H:%M"),
        )

    def save_model(self, request, obj, form, change):
        """Saved as Django does; a changed email or SMS status (any, on an add) is also a
        person's consent change in the ledger (`contacts.consent`). A status the person left
        as the page showed it, but which changed since (a platform's opt-out), keeps its
        newer value: a stale page never re-subscribes anyone."""
        before = {}
        if change and obj.pk:
            before = (
                type(obj).objects.filter(pk=obj.pk).values("email_status", "sms_status").first()
                or {}
            )
            untouched = getattr(form, "untouched_statuses", list)()
            for field in untouched:
                if before.get(field) and getattr(obj, field) != before[field]:
                    # Changed since the page was opened (a platform's opt-out, say) and left
                    # alone by the person: the newer value stays.
                    setattr(obj, field, before[field])
        super().save_model(request, obj, form, change)
        consent_record_admin_change(
            contact=obj,
            before=before,
            user_label=request.user.get_username(),
            now=timezone.now(),
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """A contact's page shows its consent ledger as a timeline, below the form."""
        if obj is not None and obj.pk:
            context["consent_timeline"] = contact_consent_timeline(contact_id=obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_search_results(self, request, queryset, search_term):
        """Phones are stored in E.164 (+447911123456): a number typed the national way
        (07911 123456) or with spaces and dashes finds them too, by its significant digits."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digits = re.sub(r"[\s().-]", "", search_term)
        if re.fullmatch(r"\+?\d{6,15}", digits):
            significant = digits.lstrip("+") if digits.startswith("+") else digits.lstrip("0")
            found |= queryset.filter(phone__endswith=significant)
        return found, may_have_duplicates

    inlines = [
        ChannelInline,
        CustomFieldValueInline,
        GroupMembershipInline,
        MailingListSubscriptionInline,
        ExternalUrlInline,
    ]
    fieldsets = [
        (None, {"fields": ["first_name", "last_name", "email", "phone", "external_id"]}),
        (
            "Profile",
            {"fields": ["language", "time_zone", "birth_date", "gender", "user_group", "tags"]},
        ),
        ("Address", {"fields": ["address_line", "city", "region", "postal_code", "country"]}),
        (
            "Subscriptions and consent",
            {
                "fields": [
                    "email_status",
                    "sms_status",
                    "privacy_consent",
                    "gdpr_marketing_consent",
                    "terms_accepted",
                    "consent_date",
                    "consent_ip",
                ]
            },
        ),
        ("Location", {"fields": ["last_latitude", "last_longitude"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_import_context_data(self, **kwargs):
        return {
            **super().get_import_context_data(**kwargs),
            "import_max_rows": f"{settings.IMPORT_MAX_ROWS:,}",
            "import_max_megabytes": f"{settings.IMPORT_MAX_BYTES / (1024 * 1024):g}",
        }

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, ImportRefused):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    # ------------------------------------------------------------ background imports

    def get_urls(self):
        def view(function):
            return self.admin_site.admin_view(function)

        return [
            path(
                "import/<int:job_id>/",
                view(self.import_job_view),
                name="contacts_contact_import_job",
            ),
            path(
                "import/<int:job_id>/confirm/",
                view(self.import_job_confirm_view),
                name="contacts_contact_import_job_confirm",
            ),
            path(
                "import/<int:job_id>/skipped.csv",
                view(self.import_job_skipped_view),
                name="contacts_contact_import_job_skipped",
            ),
            *super().get_urls(),
        ]

    def import_action(self, request, **kwargs):
        """A file of more than IMPORT_BACKGROUND_ROWS lines is stored and checked by a worker
        (`contacts.services.import_job_start`): the person is sent to its progress page at
        once. A smaller one is previewed in the request, as django-import-export does."""
        if request.method == "POST" and self.has_import_permission(request):
            form = self.create_import_form(request)
            if form.is_valid():
                import_file = form.cleaned_data["import_file"]
                text = _background_text(import_file)
                if text is not None:
                    try:
                        import_file_check_header(text=text)
                    except ImportRefused as err:
                        form.add_error("import_file", str(err))
                        context = {**self._import_page_context(request), "form": form}
                        return TemplateResponse(request, [self.import_template_name], context)
                    job = import_job_start(
                        content=text, file_name=import_file.name, user=request.user
                    )
                    return HttpResponseRedirect(
                        reverse("admin:contacts_contact_import_job", args=[job.pk])
                    )
        response = super().import_action(request, **kwargs)
        self._offer_skipping(request, response)
        return response

    def _offer_skipping(self, request, response) -> None:
        """A preview with invalid rows confirms nothing (all or nothing: the person corrects
        the file and uploads it again); the page also offers to import the valid rows and
        skip the rest, as a background import does (`_import_skipping_invalid`)."""
        context = getattr(response, "context_data", None) or {}
        result = context.get("result")
        if result is None or context.get("confirm_form") is not None:
            return
        if not (result.has_errors() or result.has_validation_errors()):
            return
        invalid = {number for number, _ in result.row_errors()}
        invalid |= {row.number for row in result.invalid_rows}
        context["skip_form"] = self.create_confirm_form(request, import_form=context["form"])
        context["skip_counts"] = {"invalid": len(invalid), "valid": len(result.rows) - len(invalid)}

    def _import_job(self, request, job_id) -> ImportJob:
        if not self.has_import_permission(request):
            raise PermissionDenied
        return get_object_or_404(ImportJob, pk=job_id)

    def import_job_view(self, request, job_id):
        """The progress page: rows checked and written, the invalid rows and the first page
        of the file, the choice at confirm, the final counts. It reloads itself while a
        worker is at it."""
        job = self._import_job(request, job_id)
        preview = import_job_preview_data(job=job)
        invalid = import_job_invalid_rows(job=job)
        headers = preview.get("headers", [])
        running = job.status in (ImportJob.Status.PREVIEWING, ImportJob.Status.IMPORTING)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import of {job.file_name or 'a file'}",
            "opts": self.model._meta,
            "job": job,
            "running": running,
            # a worker reports after every chunk: minutes without a word mean it stopped
            "stale": running and job.updated_at < timezone.now() - datetime.timedelta(minutes=5),
            "headers": headers,
            "page_rows": [_job_row(row, headers) for row in preview.get("page", [])],
            "clearings": preview.get("clearings", []),
            "invalid_shown": [_job_row(row, headers) for row in invalid[:SHOWN_INVALID_ROWS]],
            "invalid_hidden": max(0, len(invalid) - SHOWN_INVALID_ROWS),
            "checked_percent": _percent(job.validated_rows, job.total_rows),
            "written_percent": _percent(job.written_rows, job.total_rows - job.invalid_rows),
            "can_confirm": job.content != ""
            and (
                job.status in (ImportJob.Status.PREVIEWED, ImportJob.Status.REFUSED)
                or (job.status == ImportJob.Status.FAILED and job.mode)
            ),
            "modes": ImportJob.Mode.choices,
            "default_mode": job.mode
            or (ImportJob.Mode.SKIP if job.invalid_rows else ImportJob.Mode.ALL),
        }
        return TemplateResponse(request, "admin/contacts/contact/import_job.html", context)

    @method_decorator(require_POST)
    def import_job_confirm_view(self, request, job_id):
        job = self._import_job(request, job_id)
        if import_job_confirm(job=job, mode=request.POST.get("mode", "")):
            self.message_user(request, "The import is queued; this page follows it.")
        else:
            self.message_user(
                request,
                "Nothing was queued: choose “all or nothing” or “skip the invalid rows”, on a "
                "checked import that is not already running or done.",
                messages.ERROR,
            )
        return HttpResponseRedirect(reverse("admin:contacts_contact_import_job", args=[job.pk]))

    def import_job_skipped_view(self, request, job_id):
        """The invalid rows of an import, with their errors, as CSV."""
        job = self._import_job(request, job_id)
        response = HttpResponse(
            import_job_skipped_csv(job=job), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-skipped.csv"'
        return response

    @method_decorator(require_POST)
    def process_import(self, request, **kwargs):
        """The confirmed import: `contacts_import` validates every row, then writes them in
        chunks. A failure part-way shows the page again, with a button to resume."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        confirm_form = self.create_confirm_form(request)
        if not confirm_form.is_valid():
            return super().process_import(request, **kwargs)  # shows the form's errors
        format_index = int(confirm_form.cleaned_data["format"])
        input_format = self.get_import_formats()[format_index](encoding=self.from_encoding)
        tmp_storage = self.get_tmp_storage_class()(
            name=confirm_form.cleaned_data["import_file_name"],
            encoding=self.from_encoding,
            read_mode=input_format.get_read_mode(),
            **self.get_tmp_storage_class_kwargs(),
        )
        if request.POST.get("mode") == ImportJob.Mode.SKIP:
            return self._import_skipping_invalid(request, confirm_form, tmp_storage)
        try:
            dataset = input_format.create_dataset(tmp_storage.read())
        except (ImportRefused, OSError) as err:
            self.message_user(request, f"The file was not imported: {err}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:contacts_contact_import"))
        outcome = contacts_import(
            dataset=dataset,
            user=request.user,
            start_row=confirm_form.cleaned_data["start_row"] or 1,
            after_chunk=lambda result: self.generate_log_entries(result, request),
        )
        if outcome.failed_row is not None:
            return self._import_failed_page(request, confirm_form, outcome)
        tmp_storage.remove()
        if outcome.validation is not None:
            self.message_user(
                request,
                "Nothing was imported: since the preview, some rows became invalid. "
                "Their errors are shown below; correct the file and import it again.",
                messages.ERROR,
            )
            context = {**self._import_page_context(request), "result": outcome.validation}
            return TemplateResponse(request, [self.import_template_name], context)
        self._import_finished_message(request, outcome)
        post_import.send(sender=None, model=self.model)
        return HttpResponseRedirect(reverse("admin:contacts_contact_changelist"))

    def _import_skipping_invalid(self, request, confirm_form, tmp_storage):
        """The preview's "import the valid rows, skip the rest": the file is imported here
        with a background import's rules (`import_job_run_here`), and the person is sent to
        its page: the counts, and the skipped rows with their errors as CSV."""
        try:
            data = tmp_storage.read()
        except OSError as err:
            self.message_user(request, f"The file was not imported: {err}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:contacts_contact_import"))
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        job = import_job_run_here(
            content=text,
            file_name=confirm_form.cleaned_data.get("original_file_name") or "",
            user=request.user,
            mode=ImportJob.Mode.SKIP,
        )
        tmp_storage.remove()
        post_import.send(sender=None, model=self.model)
        return HttpResponseRedirect(reverse("admin:contacts_contact_import_job", args=[job.pk]))

    def _import_page_context(self, request):
        return {
            **self.get_import_context_data(),
            **self.admin_site.each_context(request),
            "title": "Import",
            "opts": self.model._meta,
            "form": self.create_import_form(request),
        }

    def _import_failed_page(self, request, confirm_form, outcome: ImportOutcome):
        """The rows before the failed chunk are saved; the file waits to be resumed."""
        resume_form = self.get_confirm_form_class(request)(
            initial={**confirm_form.cleaned_data, "start_row": outcome.resume_row}
        )
        self.message_user(
            request,
            f"Row {outcome.failed_row} could not be saved: {outcome.failure}. "
            f"{outcome.written_rows:,} of {outcome.total_rows:,} rows are saved; nothing "
            f"from row {outcome.resume_row} on. Correct the cause and resume, or import a "
            "corrected file.",
            messages.ERROR,
        )
        context = {
            **self._import_page_context(request),
            "confirm_form": resume_form,
            "resume_row": outcome.resume_row,
        }
        return TemplateResponse(request, [self.import_template_name], context)

    def _import_finished_message(self, request, outcome: ImportOutcome):
        totals = outcome.totals
        self.message_user(
            request,
            f"Import finished: {totals['new']:,} new, {totals['update']:,} updated and "
            f"{totals['skip']:,} skipped contacts.",
            messages.SUCCESS,
        )

    def get_valid_export_item_pks(self, request):
        # Only the posted ids are checked, not every contact's id loaded (the library's
        # default, deprecated in 4.x, but still what its export view calls).
        posted = [pk for pk in request.POST.getlist("export_items") if pk.isdigit()]
        return self.get_queryset(request).filter(pk__in=posted).values_list("pk", flat=True)

    def history_view(self, request, object_id, extra_context=None):
        children = contact_child_history(contact_id=int(object_id)) if object_id.isdigit() else []
        extra_context = {
            **(extra_context or {}),
            "child_history": children,
            "child_history_limit": CHILD_HISTORY_LIMIT,
        }
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # The old version is shown, never saved back: SIMPLE_HISTORY_REVERT_DISABLED only hides
        # the button, and a revert would write an old content_version (settings.py).
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


def _background_text(import_file) -> str | None:
    """The file's text when it goes to the background (more lines than
    IMPORT_BACKGROUND_ROWS), else None (and the file is left as it was, to be read again)."""
    data = b"".join(import_file.chunks())
    import_file.seek(0)
    if data.count(b"\n") <= settings.IMPORT_BACKGROUND_ROWS:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None  # the in-request path says what is wrong with it


def _job_row(row: dict, headers: list[str]) -> dict:
    """A row of a job's page: its cells, each with its errors and what it would clear."""
    errors, cleared = row.get("errors", {}), row.get("cleared", {})
    return {
        "number": row["row"],
        "type": row.get("type", "invalid"),
        "row_errors": errors.get("", []),
        "cells": [
            {
                "header": header,
                "value": value,
                "errors": errors.get(header, []),
                "cleared": cleared.get(header),
            }
            for header, value in zip(headers, row["cells"], strict=False)
        ],
    }


def _percent(done: int, total: int) -> int:
    return min(100, round(100 * done / total)) if total > 0 else 0


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(ModelAdmin):
    list_display = ["name", "type"]
    search_fields = ["name"]


@admin.register(Group)
class GroupAdmin(ModelAdmin):
    search_fields = ["name"]


@admin.register(MailingList)
class MailingListAdmin(ModelAdmin):
    search_fields = ["name"]
