"""Destinations (one account on one platform) and their mappings."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from simple_history.models import HistoricalRecords

from contacts.models import CustomFieldDefinition, Group, MailingList
from sync import connectors, policy
from sync.connectors.declarations import clean_settings
from sync.connectors.records import RULED_NATIVE_FIELDS, STANDARD_FIELDS, WRITE_RULES


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
    enabled = models.BooleanField(default=True)
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
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_error = models.TextField(
        blank=True, editable=False, help_text="Why the platform refused our credentials."
    )
    # Who changed the platform, host or credential variables, when, and from what: a changed
    # URL or variable decides where a credential goes.
    history = HistoricalRecords(
        excluded_fields=["config_version", "alerted_failing", "options_refreshed_at"]
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

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="sync_states"
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="sync_states"
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
        indexes = [
            models.Index(fields=["destination", "status"], name="sync_state_dest_status"),
            models.Index(fields=["status", "next_attempt_at"], name="sync_state_due"),
        ]

    def __str__(self):
        return f"{self.contact_id} on {self.destination_id}: {self.status}"


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

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="attempts")
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sync_attempts",
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
        return f"{self.get_outcome_display()} {self.external_id} on {self.destination_id}"


class RateLimitSlot(models.Model):
    """The next free request slot of a destination, shared by every worker on every machine
    (the platform counts per account, not per process). See sync.ratelimit."""

    destination = models.OneToOneField(
        Destination, on_delete=models.CASCADE, primary_key=True, related_name="rate_slot"
    )
    next_at = models.FloatField(default=0.0, help_text="Unix time of the next free slot.")

    def __str__(self):
        return f"next slot of {self.destination_id} at {self.next_at:.3f}"


class WorkerHeartbeat(models.Model):
    """When each worker process last took up work (shown on the dashboard)."""

    name = models.CharField(max_length=150, primary_key=True)
    last_seen = models.DateTimeField()

    def __str__(self):
        return self.name
