"""Destinations (one account on one platform) and their mappings."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from simple_history.models import HistoricalRecords

from contacts.models import CustomFieldDefinition, Group, MailingList
from sync import connectors, policy
from sync.connectors.declarations import clean_settings
from sync.connectors.inbound import EventKind, Reason
from sync.connectors.records import RULED_NATIVE_FIELDS, STANDARD_FIELDS, WRITE_RULES


def new_inbound_token() -> str:
    """An unguessable path segment for a destination's inbound URL (43 characters)."""
    return secrets.token_urlsafe(32)


class Destination(models.Model):
    """One configured account on one platform. Secrets stay in the environment: the
    destination only names the variables that hold them."""

    name = models.CharField(max_length=100, unique=True)
    platform = models.CharField(max_length=20, choices=connectors.as_choices)
    base_url = models.URLField(
        "base URL",
        blank=True,
        help_text="Leave blank for the platform's production URL (or the region's).",
    )
    # The platform's connector says what these two mean (its `credentials`) and which of
    # them it needs; the admin labels them so.
    key_env = models.CharField(
        "credential variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the platform's key or secret.",
    )
    secret_env = models.CharField(
        "second credential variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding a second secret, where the "
        "platform needs one.",
    )
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="The platform's own settings, as its connector declares them.",
    )

    class SyncMode(models.TextChoices):
        UPSERT = "upsert", "Create or update"
        UPDATE_ONLY = "update_only", "Update only (never create on the platform)"

    enabled = models.BooleanField(default=True)
    sync_mode = models.CharField(
        "sync mode",
        max_length=20,
        choices=SyncMode.choices,
        default=SyncMode.UPSERT,
        help_text="Update only: contacts the platform does not hold are skipped (“not on "
        "platform”), never created there.",
    )
    push_on_save = models.BooleanField(default=True)
    delete_on_platform = models.BooleanField(
        default=False, help_text="Delete the contact on the platform when it is deleted here."
    )
    marketing_consent_only = models.BooleanField(
        "only contacts with GDPR marketing consent", default=False
    )
    rate_limit = models.FloatField(
        null=True, blank=True, help_text="Requests per second. Blank: the platform's default."
    )
    timeout = models.FloatField(default=10.0, help_text="Seconds to wait for an answer.")
    options_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    config_version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Rises when the destination or its mappings change what is sent.",
    )
    alerted_failing = models.BooleanField(
        default=False,
        editable=False,
        help_text="An alert about the failure rate was sent and the rate has not recovered.",
    )
    # The vendor-change guard (sync/connectors/probe.py): when the probe last ran, what each
    # of its calls gave ([{call, outcome, detail, changes}]), the one destination-wide warning
    # while an answer has lost the shape the connector reads ("" otherwise), and when the
    # next daily probe is due (null: due now).
    probe_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    probe_results = models.JSONField(default=list, blank=True, editable=False)
    probe_warning = models.TextField(blank=True, editable=False)
    probe_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    reconciled_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the scheduler last queued the daily sampled read-back.",
    )
    recreate_deleted = models.BooleanField(
        "re-create contacts deleted on the platform",
        default=False,
        help_text="When the platform says it deleted a contact, push it again (default: "
        "don't; the contact stays known here, marked as deleted there).",
    )
    apply_opt_outs_from_others = models.BooleanField(
        "apply opt-outs from other platforms",
        default=True,
        help_text="When a contact opts out on another platform (an unsubscribe, a bounce, a "
        "spam complaint reaching us from it), opt them out here too, through this platform's "
        "own opt-out call (sync.consent). Off: this platform keeps its own consent state.",
    )
    inbound_token = models.CharField(
        max_length=64,
        unique=True,
        default=new_inbound_token,
        editable=False,
        help_text="The secret part of this destination's inbound URL.",
    )
    inbound_state = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="What the platform answered when the inbound URL was registered (a topic), "
        "and when.",
    )
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_error = models.TextField(
        blank=True, editable=False, help_text="Why the platform refused our credentials."
    )
    # Who changed the platform, host or credential variables, when, and from what: a changed
    # URL or variable decides where a credential goes.
    history = HistoricalRecords(
        excluded_fields=[
            "config_version",
            "alerted_failing",
            "options_refreshed_at",
            "probe_checked_at",
            "probe_results",
            "probe_warning",
            "probe_due_at",
            "reconciled_at",
            "inbound_state",
            "inbound_token",  # a secret: an old one is no one's business
        ]
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.pk is not None and kwargs.get("update_fields") is None:
            self.config_version += 1  # an edit may change every payload
        super().save(*args, **kwargs)

    def bump_config_version(self) -> None:
        Destination.objects.filter(pk=self.pk).update(config_version=F("config_version") + 1)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def connector_class(self):
        return connectors.get_class(self.platform)

    @property
    def effective_base_url(self) -> str:
        return self.base_url or self.connector_class.base_url_for(self.settings or {})

    @property
    def effective_rate_limit(self) -> float:
        return self.rate_limit or self.connector_class.default_rate_limit

    @property
    def credential_names(self) -> dict[str, str]:
        """Destination field -> the environment variable it names, for each credential the
        platform needs."""
        return {c.field: getattr(self, c.field) for c in self.connector_class.credentials.values()}

    @property
    def credential_variables(self) -> dict[str, str]:
        """The connector's credential name -> the environment variable named for it."""
        return {
            name: getattr(self, c.field) for name, c in self.connector_class.credentials.items()
        }

    @property
    def inbound_credential_variables(self) -> dict[str, str]:
        """The connector's inbound credential name -> the variable named for it ("" unset)."""
        return {
            name: getattr(self, c.field)
            for name, c in self.connector_class.inbound_credentials.items()
        }

    def policy_problem(self) -> str:
        """Why this destination may not be used as stored ("" when it may): rows saved before
        the outbound policy, or under a wider one, are refused at push time."""
        problems = policy.destination_problems(
            connector_class=self.connector_class,
            base_url=self.effective_base_url,
            credential_names=self.credential_names,
        )
        return " ".join(problems.values())

    def clean(self):
        if self.platform not in connectors.CONNECTORS:
            return
        cls = self.connector_class
        problems = policy.destination_problems(
            connector_class=cls, base_url=self.base_url, credential_names=self.credential_names
        )
        for credential in cls.inbound_credentials.values():
            name = getattr(self, credential.field)
            problem = name and policy.credential_name_problem(name)
            if problem:
                problems[credential.field] = problem
        if problems:
            raise ValidationError(problems)

    def clean_fields(self, exclude=None):
        """The settings are checked against what the platform's connector declares. A form
        that shows them as fields of their own (sync/forms.py) checks them there and leaves
        `settings` out of the model's checks."""
        super().clean_fields(exclude=exclude)
        if (exclude and "settings" in exclude) or self.platform not in connectors.CONNECTORS:
            return
        try:
            self.settings = clean_settings(self.connector_class.destination_settings, self.settings)
        except ValidationError as err:
            messages = [m for problem in err.message_dict.values() for m in problem]
            raise ValidationError({"settings": messages}) from err


class RemoteOption(models.Model):
    """A field or list the platform offers, fetched by "Refresh from platform"."""

    class Kind(models.TextChoices):
        FIELD = "field", "Field"
        LIST = "list", "List"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="options")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    remote_id = models.CharField(max_length=200)
    label = models.CharField(max_length=200)
    type = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["kind", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "kind", "remote_id"], name="remote_option_unique"
            )
        ]

    def __str__(self):
        return f"{self.label} ({self.remote_id})"


class MappingPart(models.Model):
    """A mapping row: changing it changes what the destination's payloads hold."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.destination.bump_config_version()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        self.destination.bump_config_version()
        return result


class FieldMapping(MappingPart):
    """One of our fields -> the platform's field. Unmapped fields are not sent."""

    history = HistoricalRecords()

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="field_mappings"
    )
    standard_field = models.CharField(
        max_length=40, blank=True, choices=list(STANDARD_FIELDS.items())
    )
    custom_field = models.ForeignKey(
        CustomFieldDefinition,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="mappings",
    )
    remote_field = models.CharField(
        max_length=200,
        help_text="The platform's own id or name of the field (pick it from the list after "
        "“Refresh from platform”).",
    )
    write_rule = models.CharField(
        max_length=10,
        choices=list(WRITE_RULES.items()),
        default="always",
        help_text="Always; on create only (the platform owns the value afterwards); or never "
        "(mapped for read-back only).",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(standard_field="", custom_field__isnull=False)
                    | (~models.Q(standard_field="") & models.Q(custom_field__isnull=True))
                ),
                name="field_mapping_one_source",
                violation_error_message="Map either a standard field or a custom field.",
            ),
            models.UniqueConstraint(
                fields=["destination", "standard_field", "custom_field"],
                name="field_mapping_unique",
            ),
        ]

    def __str__(self):
        return f"{self.source_key} -> {self.remote_field}"

    def clean(self):
        if self.destination_id and self.destination.platform in connectors.CONNECTORS:
            problem = self.destination.connector_class.remote_field_problem(self.remote_field)
            if problem:
                raise ValidationError({"remote_field": problem})

    @property
    def source_key(self) -> str:
        return self.standard_field or f"custom:{self.custom_field.name}"


class NativeFieldRule(MappingPart):
    """The write rule of a standard field the platform holds in a native slot of its own (its
    first name, say), which no field mapping names. Without a row the field is sent always."""

    history = HistoricalRecords()

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="native_field_rules"
    )
    field = models.CharField(max_length=40, choices=list(RULED_NATIVE_FIELDS.items()))
    write_rule = models.CharField(
        max_length=10,
        choices=list(WRITE_RULES.items()),
        default="always",
        help_text="On create only: the platform owns the value once the contact exists there. "
        "Never: the field is not sent.",
    )

    class Meta:
        verbose_name = "native field write rule"
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "field"], name="native_field_rule_unique"
            )
        ]

    def __str__(self):
        return f"{self.get_field_display()}: {self.get_write_rule_display()}"

    def clean(self):
        if not self.destination_id or self.destination.platform not in connectors.CONNECTORS:
            return
        cls = self.destination.connector_class
        native = getattr(cls, "native_fields", ())
        if self.field and self.field not in native:
            label = RULED_NATIVE_FIELDS.get(self.field, self.field)
            if self.field in cls.mappable_standard_fields:
                raise ValidationError(
                    {
                        "field": f"{cls.label} has no native slot for {label}: it is sent only "
                        "through a field mapping; set the rule on that mapping."
                    }
                )
            raise ValidationError({"field": f"{cls.label} is not sent {label}."})
        if self.write_rule == "never" and self.field in cls.required_on_create:
            label = RULED_NATIVE_FIELDS.get(self.field, self.field)
            raise ValidationError(
                {
                    "write_rule": f"{cls.label} needs the {label.lower()} to create a contact: "
                    "choose “on create only” to let it own the value afterwards."
                }
            )


class ListMapping(MappingPart):
    """One of our groups or mailing lists -> the platform's list of its own kind."""

    history = HistoricalRecords()

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="list_mappings"
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="mappings"
    )
    mailing_list = models.ForeignKey(
        MailingList, null=True, blank=True, on_delete=models.CASCADE, related_name="mappings"
    )
    remote_list = models.CharField(max_length=200, help_text="The platform's list id.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(group__isnull=False, mailing_list__isnull=True)
                    | models.Q(group__isnull=True, mailing_list__isnull=False)
                ),
                name="list_mapping_one_source",
                violation_error_message="Map either a group or a mailing list.",
            ),
            models.UniqueConstraint(
                fields=["destination", "group", "mailing_list"], name="list_mapping_unique"
            ),
        ]

    def __str__(self):
        return f"{self.group or self.mailing_list} -> {self.remote_list}"


class SyncStatus(models.TextChoices):
    NEVER = "never", "Never pushed"
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    SYNCED = "synced", "Synced"
    UNCHANGED = "unchanged", "Unchanged"
    WAITING = "waiting", "Waiting (destination paused)"
    # The platform took a bulk request and has not yet said, per contact, what it did
    # (shared/platforms.md part A, "Bulk outcomes come from the platform").
    AWAITING = "awaiting", "Accepted, awaiting confirmation"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    SAVE = "save", "Save"
    ACTION = "action", "Admin action"
    COMMAND = "command", "Command"
    RETRY = "retry", "Retry"
    DELETE = "delete", "Delete"


class ContactSyncState(models.Model):
    """Where one contact stands on one destination. Written only by `sync.services`."""

    # No index of their own: the unique (contact, destination) and the (destination, status)
    # indexes lead with these columns and serve every lookup and cascade by them. Each index
    # fewer is one entry fewer to write on every push, whose claim and outcome both change the
    # indexed status (sync/migrations/0022_drop_redundant_indexes).
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="sync_states", db_index=False
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="sync_states", db_index=False
    )
    remote_id = models.CharField("remote ID", max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=SyncStatus.choices, default=SyncStatus.NEVER)
    skip_reason = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Failed attempts since the last success."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    payload_hash = models.CharField(
        max_length=64, blank=True, help_text="Hash of the last payload the platform accepted."
    )
    accepted_content_version = models.PositiveBigIntegerField(null=True, blank=True)
    accepted_config_version = models.PositiveIntegerField(null=True, blank=True)
    accepted_email_status = models.CharField(max_length=20, blank=True)
    deleted_on_platform_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the platform said it deleted this contact (its id was cleared).",
    )
    accepted_keys = models.JSONField(
        null=True,
        blank=True,
        help_text="The fields the platform last accepted from us with a value (those a clear "
        "here must clear there). Empty: unknown, every mapped field is possibly held.",
    )
    confirmation_ref = models.CharField(
        "confirmation reference",
        max_length=200,
        blank=True,
        help_text="What the platform gave to follow an accepted bulk request (its bulk or "
        "import session id), while the contact awaits confirmation.",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="states"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "contact sync state"
        permissions = [("push_contacts", "Can push contacts to destinations and retry them")]
        constraints = [
            models.UniqueConstraint(fields=["contact", "destination"], name="sync_state_unique")
        ]
        # On PostgreSQL sync_state_due and the run's index hold only the states their
        # queries read (pending and awaiting; owed to a run): a claimed, synced or new state
        # is no entry in them (sync/migrations/0024_partial_push_indexes).
        indexes = [
            models.Index(fields=["destination", "status"], name="sync_state_dest_status"),
            models.Index(fields=["status", "next_attempt_at"], name="sync_state_due"),
        ]

    def __str__(self):
        return f"{self.contact} on {self.destination.name}: {self.get_status_display()}"


class SyncRun(models.Model):
    """One admin action, command or retry sweep, with its counts."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    destination = models.ForeignKey(
        Destination,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="Blank: every enabled destination.",
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    force = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(
        default=0, help_text="Confirmed, where the platform does not say created or updated."
    )
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # A run started from the admin (or `push_contacts --queue`) is planned by a worker
    # (sync.services.run_prepare): these say how far that planning got.
    preparing = models.BooleanField(
        default=False, help_text="Its contacts are still being planned and queued by a worker."
    )
    selected = models.PositiveIntegerField(default=0, help_text="Contacts selected.")
    target_ids = models.JSONField(
        default=list,
        blank=True,
        help_text="The destinations the run pushes to, fixed when it starts (its total counts "
        "them): one enabled or disabled while it is prepared does not change what it owes.",
    )
    planned = models.PositiveIntegerField(
        default=0, help_text="Selected contacts planned so far (queued, or settled unchanged)."
    )
    planned_at = models.DateTimeField(
        null=True, blank=True, help_text="The planning's last progress (its end, once done)."
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Run {self.pk} ({self.get_trigger_display()})"

    @property
    def done(self) -> int:
        return (
            self.created
            + self.updated
            + self.accepted
            + self.unchanged
            + self.failed
            + self.skipped
        )


class SyncRunSelection(models.Model):
    """A contact a run still has to plan (sync.services.run_prepare). The person's selection
    is taken here in one `INSERT … SELECT` when they click; the planning task removes each
    batch in the transaction that queues it, so what is left is exactly what is still to
    plan, also after a worker died part-way."""

    # The unique constraint's index leads with the run. No constraint in the database: a
    # million rows are written at once, and PostgreSQL checks a foreign key row by row
    # (Django's CASCADE still removes a deleted run's rows).
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )
    # Not a foreign key: a contact deleted meanwhile is skipped by the planning, and deleting
    # contacts never has to look through this table.
    contact_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "contact_id"], name="sync_run_selection_unique")
        ]

    def __str__(self):
        return f"contact {self.contact_id} in run {self.run_id}"


class SyncAttempt(models.Model):
    """One push, delete or check of one contact on one destination: the attempt log."""

    class Outcome(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        # The platform answers a create and an update alike (an upsert) and our lookup did
        # not tell: "created" only when the platform or our lookup says so.
        ACCEPTED = "accepted", "Accepted (created or updated)"
        AWAITING = "awaiting", "Accepted, awaiting confirmation"
        UNCHANGED = "unchanged", "Unchanged"
        RETRY = "retry", "Will retry"
        FAILED = "failed", "Failed"
        WAITING = "waiting", "Waiting (destination paused)"
        SKIPPED = "skipped", "Skipped"
        DELETED = "deleted", "Deleted"

    # No index of their own: attempt_dest_recent and attempt_contact_recent lead with them.
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sync_attempts",
        db_index=False,
    )
    external_id = models.CharField("external ID", max_length=100, blank=True)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    http_status = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    request_body = models.TextField(blank=True, help_text="Credentials removed.")
    response_excerpt = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "-started_at"], name="attempt_contact_recent"),
            models.Index(fields=["destination", "-started_at"], name="attempt_dest_recent"),
        ]

    def __str__(self):
        return f"{self.get_outcome_display()} {self.external_id} on {self.destination.name}"


class PushesPerHour(models.Model):
    """The dashboard's pushes on one destination in one settled hour (an hour that ended long
    enough ago that no push can still be written into it), stored by the scheduler
    (`sync.services.pushes_per_hour_store`) and read by the dashboard. Counting a week of a
    ten-million-row attempt log on every page load takes seconds; a settled hour's count
    never changes (pruning removes only rows far older than the week the dashboard shows),
    so it is counted once."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="The hour's start, in UTC.")
    pushes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "hour"], name="pushes_per_hour_unique")
        ]

    def __str__(self):
        return f"{self.pushes} pushes on {self.destination_id} at {self.hour:%Y-%m-%d %H:00} UTC"


class SyncStatusCount(models.Model):
    """How many contact sync states stand in one status on one destination (the failed ones
    also by their last error), as of the last compaction: the dashboard's overview and top
    errors without counting millions of states per view (`sync.selectors.state_counts` adds
    the deltas not yet folded in).

    Written only by the database: triggers on the sync state table (migration 0021), never
    by Python code. States are written by many paths: the engine's set-based UPDATE and
    INSERT … SELECT (sync.engine, sync.sqlids), services, inbound events, erasure, imports,
    admin actions, and deletes and cascades of contacts and destinations; a trigger sees every
    one of them, raw SQL included, where a count kept in Python would miss any path that
    forgot it. On PostgreSQL the triggers only append to SyncStatusCountDelta and the
    scheduler folds those in (`sync.services.status_counts_compact`); on SQLite (one writer)
    they update these totals directly.

    No foreign key: the rows of a deleted destination fall to zero as its states are
    deleted, and compaction removes them."""

    destination = models.ForeignKey(
        Destination,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=20, choices=SyncStatus.choices)
    error = models.TextField(
        blank=True,
        help_text="The failed states' last error (the dashboard's top errors); blank "
        "for the other statuses.",
    )
    n = models.BigIntegerField(default=0)

    # Unique on (destination, status, error), made by migration 0021 for each database: on
    # PostgreSQL over md5(error), since a B-tree entry cannot hold an error of any length.

    def __str__(self):
        return f"{self.n} {self.status} on {self.destination_id}"


class SyncStatusCountDelta(models.Model):
    """A change to SyncStatusCount not yet folded in: one row per (destination, status) per
    statement that wrote sync states on PostgreSQL, appended by a trigger. Appending, rather
    than updating a total row, means two workers writing states at once never wait on (or
    deadlock over) the same counter row."""

    destination = models.ForeignKey(
        Destination,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=20, choices=SyncStatus.choices)
    error = models.TextField(blank=True, help_text="As SyncStatusCount.error.")
    n = models.BigIntegerField(help_text="States added (negative: removed).")

    def __str__(self):
        return f"{self.n:+} {self.status} on {self.destination_id}"


class ContactDrift(models.Model):
    """What a read-back found different on the platform from what we would send now, for one
    contact on one destination (sync.drift). Field names only: the values stay where they are
    (here and there), so no copy of personal data is kept. Removed when a push is accepted."""

    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="drifts")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="drifts")
    fields = models.JSONField(default=list, help_text="The fields that differ, in our words.")
    missing = models.BooleanField(
        default=False, help_text="Our state says the platform holds it; the platform does not."
    )
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name = "contact drift"
        constraints = [
            models.UniqueConstraint(fields=["contact", "destination"], name="drift_unique")
        ]

    def __str__(self):
        what = "missing" if self.missing else ", ".join(self.fields)
        return f"{self.contact_id} on {self.destination_id}: {what}"

    @property
    def summary(self) -> str:
        """ "drifted: city, phone" or "missing on the platform"."""
        if self.missing:
            return "missing on the platform"
        names = (name.removeprefix("custom:").replace("_", " ") for name in self.fields)
        return "drifted: " + ", ".join(names)


class RateLimitSlot(models.Model):
    """The next free request slot of a destination, shared by every worker on every machine
    (the platform counts per account, not per process). See sync.ratelimit."""

    destination = models.OneToOneField(
        Destination, on_delete=models.CASCADE, primary_key=True, related_name="rate_slot"
    )
    next_at = models.FloatField(default=0.0, help_text="Unix time of the next free slot.")

    def __str__(self):
        return f"next slot of {self.destination_id} at {self.next_at:.3f}"


class CallClassSlot(models.Model):
    """The next free slot of one class of calls of a destination (Yespo's contact search, 50
    requests/s beside 200 for the rest), on top of the destination's own (sync.ratelimit)."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="call_class_slots"
    )
    call_class = models.CharField(max_length=40)
    next_at = models.FloatField(default=0.0, help_text="Unix time of the next free slot.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "call_class"], name="call_class_slot_unique"
            )
        ]

    def __str__(self):
        return f"next {self.call_class} slot of {self.destination_id} at {self.next_at:.3f}"


class WorkerHeartbeat(models.Model):
    """When each worker process last took up work (shown on the dashboard)."""

    name = models.CharField(max_length=150, primary_key=True)
    last_seen = models.DateTimeField()

    def __str__(self):
        return self.name


class Erasure(models.Model):
    """One person erased (GDPR art. 17) and the state of the erasure on every platform (its
    receipts). Its tombstone (`contacts.Tombstone`, keyed hashes only) outlives the person.

    `pending_external_id` is the one identifier kept while some platform still has to be
    retried (every remote call needs it); it is blanked as soon as none has to."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ATTENTION = "attention", "Needs attention"

    tombstone = models.ForeignKey(
        "contacts.Tombstone", on_delete=models.PROTECT, related_name="erasures"
    )
    pending_external_id = models.CharField(max_length=100, blank=True, editable=False)
    # The contact's primary key until its local erasure is done (a number, not the person):
    # a task that died before erasing here is resumed from it.
    contact_pk = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    local_erased_at = models.DateTimeField(null=True, blank=True)
    local_summary = models.JSONField(
        default=dict, blank=True, help_text="What was removed here, counted (no values)."
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("erase_contacts", "Can erase a person here and on every platform")]

    def __str__(self):
        return f"Erasure {self.pk} ({self.get_state_display()})"


class EraseReceipt(models.Model):
    """What one platform was asked and answered when a person was erased: the time, the calls,
    the HTTP status and the platform's own message, every personal value scrubbed
    (`sync.erasure.Scrubber`). `remote_id` is the platform's own id, kept where a person must
    finish the erasure by hand on the platform (`instruction`)."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        DELETED = "deleted", "Deleted, confirmed gone"
        ABSENT = "absent", "Not on the platform"
        BY_HAND = "by_hand", "Blanked; erase by hand"
        UNCONFIRMED = "unconfirmed", "Deleted, still found on read-back"
        FAILED = "failed", "Failed (retry)"

    erasure = models.ForeignKey(Erasure, on_delete=models.CASCADE, related_name="receipts")
    destination = models.ForeignKey(
        Destination, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    destination_name = models.CharField(max_length=100)
    platform = models.CharField(max_length=20)
    remote_id = models.CharField("remote ID", max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    at = models.DateTimeField(null=True, blank=True)
    calls = models.TextField(blank=True, help_text="Method, URL and HTTP status of each call.")
    http_status = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    message = models.TextField(blank=True, help_text="The platform's own words, scrubbed.")
    instruction = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["erasure", "destination_name"]

    def __str__(self):
        return f"{self.destination_name}: {self.get_outcome_display()}"


class InboundEvent(models.Model):
    """One event a platform sent to a destination's inbound URL, stored once its delivery
    verified and before it is answered; a task applies it (`sync.inbound`). The raw object is
    kept, so a failed processing is visible and can be run again."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Applied"
        NOT_APPLIED = "not_applied", "Recorded, not applied (a later change was known)"
        REFUSED = "refused", "Refused (stale or unconfirmed opt-in)"
        UNKNOWN_CONTACT = "unknown_contact", "Unknown contact (recorded)"
        IGNORED = "ignored", "Recorded only"
        FAILED = "failed", "Failed"

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="inbound_events"
    )
    platform = models.CharField(max_length=20)
    key = models.CharField(
        max_length=200, help_text="The platform's delivery id or nonce: a replay repeats it."
    )
    kind = models.CharField(max_length=30, choices=EventKind.CHOICES)
    raw_type = models.CharField("platform's event", max_length=100, blank=True)
    channel = models.CharField(max_length=60, blank=True)
    remote_list = models.CharField(max_length=200, blank=True)
    remote_id = models.CharField("remote ID", max_length=200, blank=True)
    external_id = models.CharField("external ID", max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    status = models.CharField(max_length=20, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(db_index=True)
    stale = models.BooleanField(
        default=False, help_text="Signed more than 5 minutes from our clock (a late retry)."
    )
    body = models.JSONField(help_text="The platform's own object, as received.")
    data = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_events",
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    change_key = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The platform's change itself (not its delivery): the same whether a "
        "webhook or a poll reports it, so it is applied once (sync.polling).",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "key"], name="inbound_event_once"),
            models.UniqueConstraint(
                fields=["destination", "change_key"],
                condition=~models.Q(change_key=""),
                name="inbound_change_once",
            ),
        ]
        indexes = [
            # the destination page's last event (and the silence alert's)
            models.Index(fields=["destination", "received_at"], name="inbound_event_dest_recent"),
            # the destination page: the last event of each type, and those waiting or failed
            models.Index(
                fields=["destination", "kind", "received_at"], name="inbound_event_dest_kind"
            ),
            models.Index(
                fields=["destination", "state"],
                name="inbound_event_dest_open",
                condition=models.Q(state__in=["pending", "failed"]),
            ),
            # the fan-out companions the dashboard's counts look up for each unsubscribe
            # (sync.selectors.count_inbound): bounces, complaints and deletes only
            models.Index(
                fields=["destination", "occurred_at"],
                name="inbound_event_fan_out",
                condition=models.Q(
                    kind__in=[EventKind.HARD_BOUNCE, EventKind.COMPLAINT, EventKind.DELETED]
                ),
            ),
        ]

    def __str__(self):
        return f"{self.raw_type or self.kind} on {self.destination_id}"


class InboundRefusal(models.Model):
    """How many deliveries to a destination's inbound URL were refused, per reason."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="inbound_refusals"
    )
    reason = models.CharField(max_length=20, choices=Reason.CHOICES)
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "reason"], name="inbound_refusal_once")
        ]

    def __str__(self):
        return f"{self.get_reason_display()}: {self.count}"


class InboundRefusalHour(models.Model):
    """Refused deliveries to a destination per UTC hour and reason: InboundRefusal keeps only
    totals, and a spike (sync.alerts.inbound_refusals_check) needs the last hour against the
    usual rate. Written beside the total by sync.inbound."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="The hour's start, in UTC.")
    reason = models.CharField(max_length=20, choices=Reason.CHOICES)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "hour", "reason"], name="inbound_refusal_hour_once"
            )
        ]

    def __str__(self):
        return f"{self.count} {self.reason} on {self.destination_id} at {self.hour:%Y-%m-%d %H:00}"


class InboundAlert(models.Model):
    """One kind of inbound alert on one destination: raised (active, with what it says) while
    the condition lasts, cleared after. Raising is a conditional update of this row, so sync
    admins get one email per episode however many scheduler passes or machines see it."""

    class Kind(models.TextChoices):
        SILENT = "silent", "No events"
        REFUSALS = "refusals", "Refusals spike"

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="inbound_alerts"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    active = models.BooleanField(default=False)
    message = models.TextField(blank=True)
    raised_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "kind"], name="inbound_alert_once")
        ]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.destination_id}"


class InboundPerHour(models.Model):
    """The dashboard's inbound counts for one destination in one settled hour (by when the
    events were received), stored by the scheduler (`sync.services.inbound_per_hour_store`)
    as PushesPerHour is for pushes: counting a week of a two-million-row event table on every
    page load takes half a second, and a settled hour's counts no longer change. Opt-outs are
    counted as `sync.selectors.count_inbound` does (a platform's fan-out once)."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="The hour's start, in UTC.")
    events = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    hard_bounces = models.PositiveIntegerField(default=0)
    complaints = models.PositiveIntegerField(default=0)
    deletes = models.PositiveIntegerField(default=0)

    COUNTS = ("events", "unsubscribes", "hard_bounces", "complaints", "deletes")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "hour"], name="inbound_per_hour_unique")
        ]

    def __str__(self):
        return f"{self.events} events on {self.destination_id} at {self.hour:%Y-%m-%d %H:00} UTC"


class DestinationPoll(models.Model):
    """Where a destination's poll stands (sync.polling): the platform's cursor (what the
    connector's `poll` returned last: a modified-since time, a date, a sample position), when
    the next poll is due, and how the last one went."""

    destination = models.OneToOneField(Destination, on_delete=models.CASCADE, related_name="poll")
    cursor = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_seconds = models.FloatField(null=True, blank=True)
    last_found = models.PositiveIntegerField(default=0)
    last_requests = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    def __str__(self):
        return f"poll of {self.destination_id}"
