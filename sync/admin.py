"""Sync in the admin: destinations with their mappings, read-only state, attempt log and runs,
and the contact admin extended with badges, a sync panel and push actions."""

from functools import partial
from html import escape

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import ngettext
from django_tasks_db import admin as tasks_admin
from django_tasks_db.models import DBTaskResult
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import ActionForm, AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from contacts.admin import ContactAdmin
from contacts.models import (
    Contact,
    CustomFieldDefinition,
    Group,
    MailingList,
    new_external_id,
)
from sync import actions, connectors, selectors, services
from sync import inbound as inbound_services
from sync import polling as polling_services
from sync.actions import ObjectActionsMixin, object_action
from sync.connectors.base import ConnectorConfigurationError, ConnectorError
from sync.connectors.records import (
    RULED_NATIVE_FIELDS,
    STANDARD_FIELDS,
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    ExternalUrlRecord,
)
from sync.forms import (
    credential_field_names,
    destination_form_for,
    platform_of,
    setting_field_names,
)
from sync.models import (
    ContactSyncState,
    Destination,
    DestinationPoll,
    EraseReceipt,
    Erasure,
    FieldMapping,
    InboundEvent,
    ListMapping,
    NativeFieldRule,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncStatus,
)

PUSH_PERMISSION = "sync.push_contacts"
ERASE_PERMISSION = "sync.erase_contacts"
DEFAULT_RECONCILE_SAMPLE = 100  # the admin's sample when the daily pass is off


class ReadOnlyAdmin(ModelAdmin):
    """Logs and state: written by the sync engine only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# ----------------------------------------------------------------------------- destinations


class _RemoteOptionsInline(TabularInline):
    extra = 0
    option_kind = ""
    remote_field_name = ""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        options = list(obj.options.filter(kind=self.option_kind)) if obj else []
        field = formset.form.base_fields[self.remote_field_name]
        if options:
            choices = [("", "---------")] + [
                (o.remote_id, f"{o.label} ({o.remote_id})") for o in options
            ]
            field.widget = forms.Select(choices=choices)
        field.help_text = "" if options else "Press “Refresh from platform” to pick from a list."
        return formset


class FieldMappingInline(_RemoteOptionsInline):
    model = FieldMapping
    option_kind = RemoteOption.Kind.FIELD
    remote_field_name = "remote_field"
    fields = ["standard_field", "custom_field", "remote_field", "write_rule"]


class NativeFieldRuleInline(TabularInline):
    """Write rules of the standard fields the platform holds in native slots of its own (a
    first name, a phone): "always" unless a row says otherwise. Its model checks that the
    platform has such a slot (NativeFieldRule.clean)."""

    model = NativeFieldRule
    extra = 0
    fields = ["field", "write_rule"]
    verbose_name_plural = "Write rules of native fields (sent always unless listed here)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        cls = connectors.CONNECTORS.get(platform_of(request, obj))
        native = getattr(cls, "native_fields", ()) if cls else ()
        if native:
            field = formset.form.base_fields["field"]
            field.choices = [("", "---------")] + [
                (name, label) for name, label in RULED_NATIVE_FIELDS.items() if name in native
            ]
        return formset


class ListMappingInline(_RemoteOptionsInline):
    model = ListMapping
    option_kind = RemoteOption.Kind.LIST
    remote_field_name = "remote_list"
    fields = ["group", "mailing_list", "remote_list"]


@admin.action(description="Test connection", permissions=["change"])
def test_connection(modeladmin, request, queryset):
    for destination in queryset:
        ok, message = services.destination_test_connection(destination=destination)
        level = messages.SUCCESS if ok else messages.ERROR
        modeladmin.message_user(request, f"{destination}: {message}", level)
        if ok:  # and check that the platform's answers still have the shape we read
            shaped, summary = services.destination_probe(destination=destination)
            level = messages.SUCCESS if shaped else messages.WARNING
            modeladmin.message_user(request, f"{destination}: {summary}", level)


@admin.action(description="Refresh fields and lists from platform", permissions=["change"])
def refresh_options(modeladmin, request, queryset):
    for destination in queryset:
        try:
            count = services.destination_refresh_options(destination=destination)
        except (ConnectorError, ConnectorConfigurationError) as err:
            modeladmin.message_user(request, f"{destination}: {err}", messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            ngettext(
                "%(dest)s: %(count)d field or list fetched.",
                "%(dest)s: %(count)d fields and lists fetched.",
                count,
            )
            % {"dest": destination, "count": count},
            messages.SUCCESS,
        )


@admin.action(description="Read back a sample and compare (drift)", permissions=["push"])
def reconcile_sample(modeladmin, request, queryset):
    """Queue the read-back of a random sample of each destination's contacts (a task)."""
    sample = settings.SYNC_RECONCILE_SAMPLE or DEFAULT_RECONCILE_SAMPLE
    for destination in queryset:
        ids = services.reconcile_candidates(destination=destination, sample=sample)
        queued = services.reconcile_enqueue(destination=destination, contact_ids=ids)
        modeladmin.message_user(
            request,
            f"{destination}: {queued} contacts queued to be read back; their drift shows on "
            "the dashboard and on each contact's sync panel.",
            messages.SUCCESS,
        )


@admin.action(description="Re-push drifted contacts", permissions=["push"])
def repush_drifted(modeladmin, request, queryset):
    queued = services.drifted_repush(destinations=queryset, user_id=request.user.pk)
    modeladmin.message_user(
        request, f"{queued} drifted contacts queued to be pushed again.", messages.SUCCESS
    )


@admin.register(Destination)
class DestinationAdmin(ObjectActionsMixin, SimpleHistoryAdmin, ModelAdmin):
    list_display = [
        "name",
        "platform",
        "enabled",
        "push_on_save",
        "sync_mode",
        "health",
        "effective_url",
    ]
    list_filter = ["platform", "enabled", "sync_mode"]
    actions = [test_connection, refresh_options, reconcile_sample, repush_drifted]
    object_actions = (
        "test_connection_button",
        "refresh_options_button",
        "register_inbound_button",
    )
    # The history page lists who changed the platform, URL or credential variables.
    history_list_display = ["platform", "base_url", "key_env", "secret_env", "settings"]
    inlines = [FieldMappingInline, NativeFieldRuleInline, ListMappingInline]
    readonly_fields = [
        "health",
        "platform_notes",
        "vendor_probe",
        "unmapped_fields",
        "uncleared_fields",
        "options_refreshed_at",
        "inbound",
        "polling",
    ]
    change_form_template = "admin/sync/destination/change_form.html"

    def get_fieldsets(self, request, obj=None):
        """The neutral columns, and the credential variables and settings the platform's
        connector declares (sync/forms.py)."""
        slug = platform_of(request, obj)
        cls = connectors.CONNECTORS.get(slug)
        account = ["base_url", *credential_field_names(cls), *setting_field_names(cls)]
        return [
            (
                None,
                {
                    "fields": ["name", "platform", "enabled", "push_on_save", "health"]
                    + (["platform_notes", "vendor_probe"] if obj is not None else []),
                    "description": ""
                    if cls
                    else "Choose the platform: its own settings then appear below.",
                },
            ),
            ("Account", {"fields": account}),
            (
                "Behaviour",
                {
                    "fields": [
                        "sync_mode",
                        "marketing_consent_only",
                        "delete_on_platform",
                        "recreate_deleted",
                        "apply_opt_outs_from_others",
                        "rate_limit",
                        "timeout",
                    ]
                },
            ),
            (
                "Mappings",
                {"fields": ["unmapped_fields", "uncleared_fields", "options_refreshed_at"]},
            ),
        ] + (
            [("Events from the platform", {"fields": ["inbound", "polling"]})]
            if obj is not None
            else []
        )

    def save_model(self, request, obj, form, change):
        """Saved; and said when a credential's variable is not set where this site runs (a
        push or test would fail until the operator sets it)."""
        super().save_model(request, obj, form, change)
        for label, name in selectors.destination_unset_credentials(destination=obj):
            self.message_user(
                request,
                f"{obj.name}: {label} {name} is not set on this server; pushes and tests "
                "will fail until the operator sets it.",
                messages.WARNING,
            )

    def get_form(self, request, obj=None, change=False, **kwargs):
        cls = connectors.CONNECTORS.get(platform_of(request, obj))
        kwargs["form"] = destination_form_for(cls)
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="status")
    def health(self, obj):
        if obj.paused_at:
            return format_html(
                '<span class="sync-badge sync-failed" title="{}">Paused: {}</span>',
                obj.pause_error,
                obj.pause_error,
            )
        return format_html(
            '<span class="sync-badge sync-synced">{}</span>',
            "Active" if obj.enabled else "Disabled",
        )

    @admin.display(description="URL")
    def effective_url(self, obj):
        return obj.effective_base_url

    @admin.display(description="About this platform")
    def platform_notes(self, obj):
        if obj is None or obj.platform not in connectors.CONNECTORS:
            return "-"
        notes = getattr(obj.connector_class, "notes", ())
        return format_html_join("", "<p>{}</p>", ((note,) for note in notes)) or "-"

    @admin.display(description="Vendor-change probe")
    def vendor_probe(self, obj):
        """The last probe (daily, and on "Test connection"): each call ok, changed (what) or
        failed (how)."""
        if obj is None or obj.probe_checked_at is None:
            return "Not probed yet: it runs daily, and on “Test connection”."
        rows = format_html_join(
            "",
            '<li><span class="sync-probe-{}">{}</span> {}{}</li>',
            (
                (r["outcome"], r["outcome"], r["call"], f": {r['detail']}" if r["detail"] else "")
                for r in obj.probe_results
            ),
        )
        when = timezone.localtime(obj.probe_checked_at).strftime("%Y-%m-%d %H:%M")
        return format_html('<p>Last probed {}</p><ul class="sync-probe">{}</ul>', when, rows)

    @admin.display(description="Inbound")
    def inbound(self, obj):
        """The inbound URL and how to register it, its setup state, the last event received
        and the refused deliveries by reason (sync.selectors.destination_inbound_summary)."""
        if obj is None or obj.pk is None or obj.platform not in connectors.CONNECTORS:
            return "-"
        # the admin may render a read-only field more than once: its queries run once
        if getattr(obj, "_inbound_summary", None) is None:
            obj._inbound_summary = selectors.destination_inbound_summary(obj)
        summary = obj._inbound_summary
        last = summary["last_event"]
        parts = [
            format_html(
                "<p><strong>URL:</strong> <code>{}</code></p>",
                summary["url"]
                or "none: set SYNC_PUBLIC_URL (until then polling carries the truth)",
            ),
            format_html("<p><strong>Setup:</strong> {}</p>", summary["setup"]),
            format_html(
                '<ol class="list-decimal ml-5">{}</ol>',
                format_html_join("", "<li>{}</li>", ((step,) for step in summary["steps"])),
            ),
        ]
        if summary["missing_credentials"]:
            parts.append(
                format_html(
                    "<p>Not set, so nothing from the platform verifies: {}</p>",
                    ", ".join(summary["missing_credentials"]),
                )
            )
        parts.append(
            format_html(
                "<p><strong>Last event received:</strong> {}</p>",
                f"{last.raw_type or last.get_kind_display()} at "
                f"{timezone.localtime(last.received_at):%Y-%m-%d %H:%M} "
                f"({last.get_state_display()})"
                if last
                else "none yet",
            )
        )
        refused = ", ".join(f"{r.get_reason_display()}: {r.count}" for r in summary["refusals"])
        parts.append(format_html("<p><strong>Refused:</strong> {}</p>", refused or "none"))
        parts += self._inbound_seen(summary)
        return format_html_join("", "{}", ((part,) for part in parts))

    @staticmethod
    def _inbound_seen(summary):
        """The inbound alerts raised now, events by processing state, and the last event
        received per type."""
        parts = [
            format_html(
                '<p class="sync-banner sync-inbound-alert" data-alert="{}">{} (since {})</p>',
                alert.kind,
                alert.message,
                f"{timezone.localtime(alert.raised_at):%Y-%m-%d %H:%M}",
            )
            for alert in summary["alerts"]
        ]
        labels = dict(InboundEvent.State.choices)
        states = summary["states"]

        def counts(by_state):
            return ", ".join(f"{labels.get(k, k)}: {n}" for k, n in sorted(by_state.items()))

        parts.append(
            format_html(
                "<p><strong>Events by state, last {} hours:</strong> {}</p>"
                "<p><strong>Waiting or failed, all time:</strong> {}</p>",
                states["hours"],
                counts(states["recent"]) or "none",
                counts(states["open"]) or "none",
            )
        )
        if summary["last_by_type"]:
            rows = format_html_join(
                "",
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                (
                    (row["kind"], row["type"], f"{timezone.localtime(row['last']):%Y-%m-%d %H:%M}")
                    for row in summary["last_by_type"]
                ),
            )
            parts.append(
                format_html(
                    '<table class="sync-table" id="inbound-by-type"><thead><tr>'
                    '<th scope="col">Event</th><th scope="col">The platform’s name</th>'
                    '<th scope="col">Last received</th></tr></thead><tbody>{}</tbody></table>',
                    rows,
                )
            )
        return parts

    @admin.display(description="Polling")
    def polling(self, obj):
        """What the platform's poll asks, how often, how the last poll went, and what the
        platform gives no poll for (the connector's `polled` / `not_polled`, sync.polling)."""
        cls = connectors.CONNECTORS.get(obj.platform) if obj is not None else None
        if cls is None or not cls.polls:
            return "-"
        every = polling_services.poll_interval(obj)
        row = DestinationPoll.objects.filter(destination=obj).first()
        last = "not polled yet"
        if row is not None and row.last_run_at is not None:
            last = (
                f"{timezone.localtime(row.last_run_at):%Y-%m-%d %H:%M}: {row.last_found} new "
                f"events, {row.last_requests} requests in {row.last_seconds or 0:.1f} s"
            )
            if row.last_error:
                last += f"; {row.last_error}"
        return format_html(
            "<p><strong>Polled every {}:</strong></p><ul>{}</ul><p><strong>Last poll:</strong> "
            "{}</p><p><strong>Not polled (the platform gives no poll for it):</strong></p>"
            "<ul>{}</ul>",
            f"{every.total_seconds() / 3600:g} hours"
            if every.total_seconds() >= 3600
            else f"{every.total_seconds() / 60:g} minutes",
            format_html_join("", "<li>{}</li>", ((line,) for line in cls.polled)),
            last,
            format_html_join("", "<li>{}</li>", ((line,) for line in cls.not_polled)),
        )

    @admin.display(description="Cleared values")
    def uncleared_fields(self, obj):
        """What the platform documents no way to clear (BaseConnector.uncleared_fields)."""
        cls = connectors.CONNECTORS.get(obj.platform) if obj is not None else None
        if cls is None:
            return "-"
        if not cls.uncleared_fields:
            return f"A value cleared here is cleared on {cls.label}."
        return f"Cleared values stay on {cls.label} for: {'; '.join(cls.uncleared_fields)}."

    @admin.display(description="Not sent (unmapped)")
    def unmapped_fields(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        mapping = selectors.destination_mapping(obj)

        missing = [
            f"custom field “{d.name}”"
            for d in CustomFieldDefinition.objects.all()
            if f"custom:{d.name}" not in mapping.fields
        ]
        missing += [
            f"{STANDARD_FIELDS[name]}"
            for name in obj.connector_class.mappable_standard_fields
            if name in STANDARD_FIELDS and name not in mapping.fields
        ]
        missing += [f"group “{g.name}”" for g in Group.objects.exclude(pk__in=mapping.groups)]
        missing += [
            f"mailing list “{m.name}”"
            for m in MailingList.objects.exclude(pk__in=mapping.mailing_lists)
        ]
        return ", ".join(missing) or "Everything is mapped."

    object_history_template = "admin/sync/destination/object_history.html"

    def history_view(self, request, object_id, extra_context=None):
        mapping_history = (
            selectors.destination_mapping_history(destination_id=int(object_id))
            if object_id.isdigit()
            else []
        )
        extra_context = {**(extra_context or {}), "mapping_history": mapping_history}
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # An old version is shown, never saved back. simple-history saves a POSTed form here
        # after checking only the view permission (its form is built without change=True), so
        # a view-only role could rewrite the destination's URL or credential variables.
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def has_push_permission(self, request, obj=None):
        return request.user.has_perm(PUSH_PERMISSION)

    @object_action(description="Test connection", permissions=["change"])
    def test_connection_button(self, request, obj):
        test_connection(self, request, Destination.objects.filter(pk=obj.pk))

    @object_action(description="Refresh from platform", permissions=["change"])
    def refresh_options_button(self, request, obj):
        refresh_options(self, request, Destination.objects.filter(pk=obj.pk))

    @object_action(description="Register inbound URL", permissions=["change"])
    def register_inbound_button(self, request, obj):
        """Registration through the platform's API (iVvy); elsewhere the page's steps say
        what to do in the platform. A refusal fails this call only."""
        done, message = inbound_services.destination_inbound_register(destination=obj)
        self.message_user(
            request, f"{obj}: {message}", messages.SUCCESS if done else messages.ERROR
        )


# ------------------------------------------------------------------ state, attempts, runs


@admin.register(ContactSyncState)
class ContactSyncStateAdmin(ReadOnlyAdmin):
    list_display = [
        "contact",
        "destination",
        "status",
        "remote_id",
        "short_error",
        "attempts",
        "next_attempt_at",
        "last_success_at",
    ]
    list_filter = ["destination", "status"]
    search_fields = ["contact__email", "contact__external_id", "remote_id"]
    list_select_related = ["contact", "destination"]
    raw_id_fields = ["contact", "run"]

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:120]


@admin.register(SyncAttempt)
class SyncAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "destination",
        "external_id",
        "trigger",
        "outcome",
        "http_status",
        "duration_ms",
        "short_error",
        "user",
    ]
    list_filter = ["destination", "outcome", "trigger"]
    search_fields = ["external_id", "error"]
    list_select_related = ["destination", "user"]
    raw_id_fields = ["contact", "run", "user"]
    date_hierarchy = "started_at"

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:120]

    def get_fields(self, request, obj=None):
        # The body with the model's help text ("Credentials removed.") under an empty value
        # read as an error: shown by `request_sent`, which says what it holds.
        return [
            "request_sent" if name == "request_body" else name
            for name in super().get_fields(request, obj)
        ]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "request_sent"]

    @admin.display(description="request body")
    def request_sent(self, obj):
        if not obj.request_body:
            return "No body was sent (or none was kept for this attempt)."
        return format_html(
            '<pre class="sync-payload">{}</pre><p class="text-xs">Credentials are redacted.</p>',
            obj.request_body,
        )


@admin.action(description="Process failed events again", permissions=["push"])
def reprocess_events(modeladmin, request, queryset):
    count = services.inbound_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
    modeladmin.message_user(
        request,
        ngettext("%(n)d failed event queued.", "%(n)d failed events queued.", count) % {"n": count},
        messages.SUCCESS if count else messages.WARNING,
    )


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    """What the platforms sent, as received (raw object kept) and what became of it; a
    failed processing is shown with its error and can be run again."""

    list_display = [
        "received_at",
        "destination",
        "raw_type",
        "kind",
        "channel",
        "contact",
        "state",
        "occurred_at",
        "short_error",
    ]
    list_filter = ["destination", "kind", "state"]
    search_fields = ["external_id", "email", "remote_id", "key"]
    list_select_related = ["destination", "contact"]
    raw_id_fields = ["contact"]
    date_hierarchy = "received_at"
    actions = [reprocess_events]

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:120]

    def has_push_permission(self, request):
        return request.user.has_perm(PUSH_PERMISSION)


class FailedAttemptInline(TabularInline):
    model = SyncAttempt
    verbose_name_plural = "failed contacts"
    fields = ["external_id", "destination", "http_status", "error", "started_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(outcome=SyncAttempt.Outcome.FAILED)
            .select_related("destination")
        )

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Cancel selected runs", permissions=["push"])
def cancel_runs(modeladmin, request, queryset):
    for run in queryset.filter(state=SyncRun.State.RUNNING):
        services.run_cancel(run=run)
    modeladmin.message_user(request, "Cancelled; what was not sent stays as it was.")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "trigger",
        "destination",
        "user",
        "state",
        "started_at",
        "finished_at",
        "progress",
        "created",
        "updated",
        "unchanged",
        "failed",
        "skipped",
    ]
    list_filter = ["state", "trigger", "destination"]
    list_select_related = ["destination", "user"]
    fields = [
        "trigger",
        "destination",
        "user",
        "state",
        "progress",
        "force",
        "started_at",
        "finished_at",
        "total",
        "created",
        "updated",
        "accepted",
        "unchanged",
        "failed",
        "skipped",
        "selected",
        "planned",
        "planned_at",
    ]
    readonly_fields = fields
    inlines = [FailedAttemptInline]
    actions = [cancel_runs]

    @admin.display(description="progress")
    def progress(self, obj):
        pushed = f"{obj.done} / {obj.total}"
        if obj.preparing:  # a worker is still planning it (sync.services.run_prepare)
            return (
                f"{pushed}; being prepared: {obj.planned:,} of {obj.selected:,} selected "
                "contacts planned"
            )
        return pushed

    def has_push_permission(self, request):
        return request.user.has_perm(PUSH_PERMISSION)


# ------------------------------------------------------------------------ erasures


class EraseReceiptInline(TabularInline):
    """One receipt per platform: what was asked and answered, personal values scrubbed."""

    model = EraseReceipt
    fields = [
        "destination_name",
        "platform",
        "outcome",
        "at",
        "http_status",
        "message",
        "instruction",
        "remote_id",
        "calls",
        "attempts",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Erasure)
class ErasureAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    """Erasures and their receipts, read-only: the proof that a person was erased and how.
    Never deleted here (the receipts are that proof); "Retry" asks the platforms that failed
    again."""

    list_display = ["pk", "state", "requested_at", "requested_by", "finished_at", "receipts_text"]
    list_filter = ["state"]
    list_select_related = ["requested_by"]
    fields = ["state", "requested_at", "requested_by", "finished_at", "local_erased_at", "erased"]
    readonly_fields = fields
    inlines = [EraseReceiptInline]
    object_actions = ("retry_button",)
    change_form_template = "admin/sync/erasure/change_form.html"

    def has_delete_permission(self, request, obj=None):
        return False

    def has_erase_permission(self, request, obj=None):
        return request.user.has_perm(ERASE_PERMISSION)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("receipts")

    @admin.display(description="platforms")
    def receipts_text(self, obj):
        return ", ".join(
            f"{r.destination_name}: {r.get_outcome_display()}" for r in obj.receipts.all()
        )

    @admin.display(description="erased here")
    def erased(self, obj):
        summary = obj.local_summary or {}
        if not summary:
            return "-"
        return format_html_join(
            "", "<div>{}: {}</div>", ((name, count) for name, count in summary.items())
        )

    @object_action(description="Retry", permissions=["erase"])
    def retry_button(self, request, obj):
        retried = services.erasure_retry(erasure=obj)
        if retried:
            self.message_user(
                request,
                ngettext(
                    "%(count)d platform is asked again.",
                    "%(count)d platforms are asked again.",
                    retried,
                )
                % {"count": retried},
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "Nothing to retry: every platform settled.")


# ------------------------------------------------------------- the contact, with sync


# Per status: the word in the tooltip and the symbol on the mark, so that the mark does not
# rely on its colour alone.
MARK_TEXT = {
    SyncStatus.SYNCED: ("synced", "✓"),
    SyncStatus.UNCHANGED: ("unchanged", "✓"),
    SyncStatus.PENDING: ("pending", "…"),
    SyncStatus.IN_PROGRESS: ("pushing", "…"),
    SyncStatus.WAITING: ("waiting (destination paused)", "‖"),
    SyncStatus.AWAITING: ("awaiting confirmation", "◷"),
    SyncStatus.SKIPPED: ("skipped", "–"),
    SyncStatus.FAILED: ("failed", "✕"),
    SyncStatus.NEVER: ("never pushed", "○"),
}


class SyncDestinationFilter(admin.SimpleListFilter):
    title = "sync destination"
    parameter_name = "sync_dest"

    def lookups(self, request, model_admin):
        return [(str(d.pk), d.name) for d in model_admin.destinations(request)]

    def queryset(self, request, queryset):
        return queryset  # applied together with the status by SyncStatusFilter


class SyncErrorFilter(admin.SimpleListFilter):
    """The dashboard's error groups link here with the exact message; no sidebar entry."""

    title = "sync error"
    parameter_name = "sync_error"

    def lookups(self, request, model_admin):
        return ()

    def queryset(self, request, queryset):
        return queryset  # applied together with the status by SyncStatusFilter


class SyncStatusFilter(admin.SimpleListFilter):
    title = "sync status"
    parameter_name = "sync_status"

    def lookups(self, request, model_admin):
        return SyncStatus.choices

    def queryset(self, request, queryset):
        status = self.value()
        destination = request.GET.get("sync_dest")
        error = request.GET.get("sync_error")
        if not status and not destination and not error:
            return queryset
        states = ContactSyncState.objects.filter(contact=OuterRef("pk"))
        if destination:
            states = states.filter(destination_id=destination)
        if error:
            states = states.filter(last_error=error)
        if status == SyncStatus.NEVER:
            return queryset.exclude(Exists(states.exclude(status=SyncStatus.NEVER)))
        if status:
            states = states.filter(status=status)
        return queryset.filter(Exists(states))


class SyncedContactAdmin(ContactAdmin):
    action_form = actions.PushActionForm
    actions = [
        actions.push_selected,
        actions.preview_push,
        actions.preview_payloads,
        actions.retry_failed,
        actions.erase_selected,
    ]
    list_filter = [
        *ContactAdmin.list_filter,
        SyncDestinationFilter,
        SyncStatusFilter,
        SyncErrorFilter,
    ]
    change_form_template = "admin/contacts/contact/sync_change_form.html"

    def changelist_view(self, request, extra_context=None):
        """The action bar's destination and force controls are for those who may push: other
        roles get unfold's plain bar (their actions, preview and export, take neither)."""
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        form = context.get("action_form")
        if form is not None and not self.has_push_permission(request):
            plain = ActionForm(auto_id=None)
            plain.fields["action"].choices = form.fields["action"].choices
            context["action_form"] = plain
        return response

    def get_deleted_objects(self, objs, request):
        """Deleting a contact deletes its sync states and unlinks its attempt-log rows: the
        sync engine's own records, which no role edits. Whoever may delete the contact may
        delete them with it (the confirmation page still lists them)."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        engine_records = {
            str(model._meta.verbose_name) for model in (ContactSyncState, SyncAttempt)
        }
        return deleted, model_count, perms_needed - engine_records, protected

    def get_list_display(self, request):
        destinations = self.destinations(request)

        @admin.display(description="sync")
        def sync_cell(obj):
            states = {s.destination_id: s for s in obj.sync_states.all()}
            return _sync_cell_html(obj.pk, destinations, states)

        name, *rest = super().get_list_display(request)
        return [name, sync_cell, *rest]  # near the name

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if getattr(request, "_one_contact", False):
            return queryset
        states = ContactSyncState.objects.only(
            "contact_id", "destination_id", "status", "remote_id", "last_error", "skip_reason"
        )
        return queryset.prefetch_related(Prefetch("sync_states", queryset=states))

    def get_object(self, request, object_id, from_field=None):
        """One contact, without the list's prefetch of its sync states: its page reads them
        itself (the panel), and the prefetch was one query more on every view and save."""
        request._one_contact = True
        try:
            return super().get_object(request, object_id, from_field)
        finally:
            request._one_contact = False

    def destinations(self, request):
        if not hasattr(request, "_sync_destinations"):
            request._sync_destinations = list(Destination.objects.order_by("name"))
        return request._sync_destinations

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self._held_on_a_platform(request, obj):
            fields.append("external_id")  # changing it would make a duplicate there
        return fields

    def _held_on_a_platform(self, request, obj) -> bool:
        """Whether a platform holds the contact; asked once a request (the admin asks for
        the read-only fields twice on each view and save)."""
        held = getattr(request, "_contacts_held", None)
        if held is None:
            held = request._contacts_held = {}
        if obj.pk not in held:
            held[obj.pk] = obj.sync_states.filter(
                ~Q(remote_id="") | Q(status__in=[SyncStatus.SYNCED, SyncStatus.UNCHANGED])
            ).exists()
        return held[obj.pk]

    def has_push_permission(self, request):
        return request.user.has_perm(PUSH_PERMISSION)

    def has_erase_permission(self, request):
        return request.user.has_perm(ERASE_PERMISSION)

    def get_urls(self):
        def view(function, **kwargs):
            return self.admin_site.admin_view(partial(function, **kwargs))

        destination = "<int:contact_id>/sync/<int:destination_id>"
        return [
            path(
                "<int:contact_id>/sync-panel/",
                view(self.sync_panel_view),
                name="contacts_contact_sync_panel",
            ),
            path(
                "sync-check/",
                view(self.sync_check_view),
                name="contacts_contact_sync_check",
            ),
            path(
                f"{destination}/push/",
                view(self.sync_push_view, retry=False),
                name="contacts_contact_push_now",
            ),
            path(
                f"{destination}/retry/",
                view(self.sync_push_view, retry=True),
                name="contacts_contact_retry",
            ),
            *super().get_urls(),
        ]

    def sync_panel_context(self, request, contact) -> dict:
        """The sync panel's rows (sync.selectors) and what this user may do from it: push,
        and open the attempt log's pages (its links are shown only to those who may)."""
        attempts_admin = self.admin_site._registry.get(SyncAttempt)
        return {
            **selectors.contact_sync_panel(contact),
            "can_push": self.has_push_permission(request),
            "can_view_attempts": bool(
                attempts_admin and attempts_admin.has_view_permission(request)
            ),
        }

    def sync_panel_view(self, request, contact_id):
        contact = get_object_or_404(Contact, pk=contact_id)
        if not self.has_view_or_change_permission(request, contact):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/sync/contact_sync_panel.html",
            self.sync_panel_context(request, contact),
        )

    def sync_check_view(self, request):
        """Before a save: what each destination will refuse or not receive of the contact as
        typed on its page (POST of the page's form; reads only, writes nothing)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        contact = None
        contact_id = request.POST.get("_sync_check_contact", "")
        if contact_id.isdigit():
            contact = Contact.objects.filter(pk=int(contact_id)).first()
        allowed = (
            self.has_change_permission(request, contact)
            if contact is not None
            else self.has_add_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        record = _record_as_typed(self.get_form(request, contact), request.POST, contact)
        checks = services.contact_sync_check(
            record=record, contact_id=contact.pk if contact else None
        )
        return TemplateResponse(request, "admin/sync/contact_sync_check.html", {"checks": checks})

    def sync_push_view(self, request, contact_id, destination_id, retry):
        """The panel's "Push now" and "Retry" for one destination (POST, push permission)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_push_permission(request):
            raise PermissionDenied
        contact = get_object_or_404(Contact, pk=contact_id)
        destination = get_object_or_404(Destination, pk=destination_id)
        done = services.contact_push_now(
            contact_id=contact.pk, destination=destination, user_id=request.user.pk, retry=retry
        )
        if done in ("pushed", "queued"):
            level, text = selectors.contact_push_outcome(
                contact_id=contact.pk, destination=destination
            )
            levels = {"success": messages.SUCCESS, "warning": messages.WARNING}
            self.message_user(request, text, levels.get(level, messages.INFO))
        else:
            reasons = {
                "paused": "is paused: test its connection to resume it",
                "disabled": "is disabled",
                "not failed": "has no failed push of this contact to retry",
            }
            self.message_user(
                request, f"Nothing sent: {destination.name} {reasons[done]}.", messages.WARNING
            )
        return redirect(reverse("admin:contacts_contact_change", args=[contact.pk]))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        request._saved_contact_id = obj.pk

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """After a save, say per destination what became of its push (the push on save runs
        when the save's transaction commits, inside this call)."""
        response = super().changeform_view(request, object_id, form_url, extra_context)
        contact_id = getattr(request, "_saved_contact_id", None)
        if contact_id is not None and response.status_code == 302:
            levels = {"success": messages.SUCCESS, "warning": messages.WARNING}
            for level, text in selectors.contact_save_outcomes(contact_id=contact_id):
                self.message_user(request, text, levels.get(level, messages.INFO))
        return response

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["sync_panel"] = self.sync_panel_context(request, obj)
        may_edit = (
            self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        )
        if may_edit:
            context["sync_check_url"] = reverse("admin:contacts_contact_sync_check")
        return super().render_change_form(request, context, add, change, form_url, obj)


def _inline_rows(data, prefix: str, names: list[str]) -> list[dict]:
    """The rows of one inline formset as posted, without deleted and empty ones."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), 1000)
    except ValueError:
        return []
    rows = []
    for index in range(total):
        if data.get(f"{prefix}-{index}-DELETE"):
            continue
        row = {name: data.get(f"{prefix}-{index}-{name}", "").strip() for name in names}
        if any(row.values()):
            rows.append(row)
    return rows


def _record_as_typed(form_class, data, contact) -> ContactRecord:
    """The contact as typed on its page, unsaved, as the record a connector builds from: the
    form's fields that are valid (an invalid one shows its own error on the page) and its
    inline rows."""
    form = form_class(data, instance=contact)
    form.is_valid()
    values = {
        name: value
        for name, value in form.cleaned_data.items()
        if name in ContactRecord.__dataclass_fields__ and value is not None
    }
    values["tags"] = tuple(values.get("tags") or ())
    definitions = {str(d.pk): d for d in CustomFieldDefinition.objects.only("pk", "name", "type")}
    custom = tuple(
        CustomValueRecord(
            definitions[row["definition"]].name, definitions[row["definition"]].type, row["value"]
        )
        for row in _inline_rows(data, "custom_values", ["definition", "value"])
        if row["definition"] in definitions
    )
    return ContactRecord(
        **{
            **values,
            "id": contact.pk if contact else None,
            # a new contact's ID is generated on save: one of the same shape stands in for it
            "external_id": values.get("external_id")
            or (contact.external_id if contact else new_external_id()),
        },
        channels=tuple(
            ChannelRecord(row["type"], row["value"])
            for row in _inline_rows(data, "channels", ["type", "value"])
        ),
        custom_values=custom,
        group_ids=frozenset(
            int(row["group"])
            for row in _inline_rows(data, "memberships", ["group"])
            if row["group"].isdigit()
        ),
        subscriptions={
            int(row["mailing_list"]): bool(row["subscribed"])
            for row in _inline_rows(data, "subscriptions", ["mailing_list", "subscribed"])
            if row["mailing_list"].isdigit()
        },
        external_urls=tuple(
            ExternalUrlRecord(row["ref"], row["url"], row["label"])
            for row in _inline_rows(data, "external_urls", ["ref", "url", "label"])
        ),
    )


def _sync_cell_html(contact_id, destinations, states) -> str:
    """The list's sync cell: one mark per destination, its status as a colour and a symbol;
    hovering or focusing a mark shows the tooltip with the status, the remote ID and the
    platform's error. The cell is one tab stop (a row of marks would be one per
    destination): its group's label names every destination's status, the first mark takes
    the focus and the arrow keys (Home, End) move it along the marks, each showing its
    tooltip (sync.js: a roving tabindex).

    `states` maps a destination's id to the contact's state there. Built as one string, each
    value escaped as Django's `escape` does (html.escape): a template render per row, or
    format_html's checks for lazy text on each value, was a fifth of a 100-row page."""
    marks, labels = [], []
    for n, destination in enumerate(destinations):
        state = states.get(destination.pk)
        status = state.status if state else SyncStatus.NEVER
        text, symbol = MARK_TEXT[status]
        labels.append(f"{destination.name} {text}")
        name = escape(destination.name)
        tip = f"<strong>{name}</strong>: {escape(text)}"
        if state and state.remote_id:
            tip += f"<br>Remote ID {escape(state.remote_id)}"
        error = (state.last_error or state.skip_reason) if state else ""
        if error:
            tip += f'<br><span class="sync-tip-error">{escape(Truncator(error).chars(300))}</span>'
        tip_id = f"sync-tip-{contact_id}-{destination.pk}"
        marks.append(
            f'<span class="sync-mark sync-{escape(str(status))}" tabindex="{0 if n == 0 else -1}"'
            f' data-destination="{destination.pk}" aria-describedby="{tip_id}">'
            f'<span aria-hidden="true">{escape(destination.name[:2])}{escape(symbol)}</span>'
            f'<span class="sync-tip" role="tooltip" id="{tip_id}">{tip}</span></span>'
        )
    label = escape("Sync: " + "; ".join(labels))
    return mark_safe(
        f'<div class="sync-marks" role="group" aria-label="{label}">{"".join(marks)}</div>'
    )


admin.site.unregister(Contact)
admin.site.register(Contact, SyncedContactAdmin)


# ---------------------------- users, roles, login throttling, tasks: in unfold's classes

# Their own admins, unchanged in what they do, on unfold's ModelAdmin (its forms and widgets)
# so that every page of the site has the same look.
admin.site.unregister(User)
admin.site.unregister(AuthGroup)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(AuthGroup)
class RoleAdmin(BaseGroupAdmin, ModelAdmin):
    pass


for _model, _base in [
    (AccessAttempt, axes_admin.AccessAttemptAdmin),
    (AccessLog, axes_admin.AccessLogAdmin),
    (AccessFailureLog, axes_admin.AccessFailureLogAdmin),
    (DBTaskResult, tasks_admin.DBTaskResultAdmin),
]:
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_base, ModelAdmin), {}))
