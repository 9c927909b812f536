"""The contact and its inline children: the union of what the four platforms accept.

`content_version` rises with every change to a contact or any of its children, so the sync
engine can tell an unchanged contact without rebuilding its payloads. This module knows nothing
of `sync`.
"""

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower
from simple_history.models import HistoricalRecords

from contacts import validators


def new_external_id() -> str:
    """A stable, unique external ID for a contact created without one."""
    return f"ct-{uuid.uuid4().hex}"


class EmailStatus(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    NO_MARKETING = "no_marketing", "No marketing"


class SmsStatus(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    FAILED = "failed", "Failed"
    NO_MARKETING = "no_marketing", "No marketing"


class Gender(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"


class Contact(models.Model):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.CharField(
        max_length=254, blank=True, validators=[validators.validate_email], db_index=True
    )
    phone = models.CharField(
        max_length=20, blank=True, help_text="Stored in E.164. Without +, read in the country."
    )
    external_id = models.CharField(
        "external ID",
        max_length=100,
        unique=True,
        blank=True,
        help_text="The key every platform matches on. Generated when left blank.",
    )
    language = models.CharField(
        max_length=2,
        blank=True,
        choices=validators.language_choices,
        help_text="ISO 639-1",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validators.validate_time_zone],
        help_text="IANA name, e.g. Europe/London",
    )
    address_line = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(
        max_length=2, blank=True, choices=validators.country_choices, db_index=True
    )
    postal_code = models.CharField(max_length=20, blank=True)
    birth_date = models.DateField(
        null=True, blank=True, validators=[validators.validate_birth_date]
    )
    gender = models.CharField(max_length=10, blank=True, choices=Gender.choices)
    email_status = models.CharField(
        max_length=20, choices=EmailStatus.choices, default=EmailStatus.SUBSCRIBED, db_index=True
    )
    sms_status = models.CharField(
        "SMS status",
        max_length=20,
        choices=SmsStatus.choices,
        default=SmsStatus.NO_MARKETING,
        db_index=True,
    )
    privacy_consent = models.BooleanField(default=False)
    gdpr_marketing_consent = models.BooleanField("GDPR marketing consent", default=False)
    terms_accepted = models.BooleanField(default=False)
    consent_date = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField("consent IP", null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    last_latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    last_longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    user_group = models.CharField(max_length=100, blank=True)
    groups = models.ManyToManyField("Group", through="GroupMembership", related_name="contacts")
    content_version = models.PositiveBigIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Who changed what, shown on the contact's history page. The version counter and the
    # timestamp change on every save: a history row has its own date, and neither is a change
    # a person made.
    history = HistoricalRecords(excluded_fields=["content_version", "updated_at"])

    class Meta:
        ordering = ["-updated_at", "-id"]
        # The contact list's language filter reads its values by walking this index
        # (contacts.selectors.distinct_values). In Meta, not db_index, so the history table
        # (simple-history copies db_index) does not pay for it on every change.
        indexes = [models.Index(fields=["language"], name="contact_language_idx")]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="contact_email_unique_ci",
                violation_error_message="A contact with this email already exists.",
            ),
        ]

    def __str__(self):
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.external_id

    def save(self, *args, **kwargs):
        if not self.external_id:
            self.external_id = new_external_id()
        if self.pk is not None:
            self.content_version = (self.content_version or 0) + 1
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "content_version"}
        super().save(*args, **kwargs)

    def bump_content_version(self) -> None:
        """Mark the contact changed after an edit to one of its children."""
        Contact.objects.filter(pk=self.pk).update(content_version=F("content_version") + 1)


class ContactChild(models.Model):
    """A row edited inline on the contact's page; any change to it changes the contact.

    Each child model keeps its own history (`inherit=True`), listed on the contact's history
    page with the contact's own."""

    history = HistoricalRecords(inherit=True)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.contact.bump_content_version()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        self.contact.bump_content_version()
        return result


class ChannelType(models.TextChoices):
    # Yespo's channel types, lowercase as its published API spells them.
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    VIBER = "viber", "Viber"
    MOBILEPUSH = "mobilepush", "Mobile push"
    WEBPUSH = "webpush", "Web push"
    APPINBOX = "appinbox", "App inbox"
    WIDGET = "widget", "Widget"
    INAPP = "inapp", "In-app"


MAX_CHANNELS_PER_TYPE = 2  # Yespo: "maximum two channels of the same type"


class Channel(ContactChild):
    """An extra channel; the contact's email and phone are its primary email and SMS channels."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="channels")
    type = models.CharField(max_length=20, choices=ChannelType.choices)
    value = models.CharField(max_length=500)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "type", "value"], name="channel_unique_per_contact"
            )
        ]

    def __str__(self):
        return f"{self.get_type_display()}: {self.value}"


class CustomFieldType(models.TextChoices):
    STRING = "string", "String"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Boolean"
    DATE = "date", "Date"


class CustomFieldDefinition(models.Model):
    name = models.CharField(max_length=100, unique=True)
    type = models.CharField(
        max_length=10, choices=CustomFieldType.choices, default=CustomFieldType.STRING
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CustomFieldValue(ContactChild):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="custom_values")
    definition = models.ForeignKey(
        CustomFieldDefinition, on_delete=models.PROTECT, related_name="values", verbose_name="field"
    )
    # 500: the longest value Loops takes ("Some body key or value is longer than allowable");
    # refused here, on the field, rather than by the platform after the save.
    value = models.CharField(max_length=500)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "definition"], name="custom_value_unique_per_contact"
            )
        ]

    def __str__(self):
        return self.definition.name if self.definition_id else "custom field"

    def clean(self):
        if self.definition_id is not None:
            try:
                self.value = validators.normalize_custom_value(self.definition.type, self.value)
            except ValidationError as err:
                raise ValidationError({"value": err.messages}) from err


class Group(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class GroupMembership(ContactChild):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="memberships")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "group"], name="membership_unique")
        ]

    def __str__(self):
        return self.group.name if self.group_id else "group"


class MailingList(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class MailingListSubscription(ContactChild):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="subscriptions")
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="subscriptions"
    )
    subscribed = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "mailing_list"], name="subscription_unique")
        ]

    def __str__(self):
        return self.mailing_list.name if self.mailing_list_id else "mailing list"


MAX_EXTERNAL_URLS = 3  # iVvy: "a maximum of 3 objects allowed"


class ExternalUrl(ContactChild):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="external_urls")
    ref = models.CharField(max_length=100)
    url = models.CharField("URL", max_length=500, validators=[validators.validate_https_url])
    label = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = "external URL"
        constraints = [
            models.UniqueConstraint(fields=["contact", "ref"], name="external_url_ref_unique")
        ]

    def __str__(self):
        return self.ref


class Tombstone(models.Model):
    """What is left of an erased person: keyed hashes (`contacts.selectors.tombstone_hash`) of
    their normalised email and of their external ID, never the values. An import row or a
    platform event that would bring the person back is recognised by them and shown
    (`contacts.selectors.contact_is_erased`) instead of silently re-creating the contact."""

    email_hash = models.CharField(max_length=64, blank=True, db_index=True)
    external_id_hash = models.CharField(max_length=64, blank=True, db_index=True)
    erased_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-erased_at", "-id"]

    def __str__(self):
        return f"Erased person {self.pk} ({self.erased_at:%Y-%m-%d})"


class ConsentSource(models.TextChoices):
    ADMIN = "admin", "A person in the admin"
    IMPORT = "import", "An import"
    PLATFORM = "platform", "A platform event"
    POLL = "poll", "A platform poll"


OPT_IN_STATUSES = frozenset({"subscribed"})


class ConsentEntry(models.Model):
    """One consent change of one contact on one channel ("email", "sms", "push") or list
    ("list:<mailing list id>"), from any source, at the time it happened. The latest entry of
    a channel is the contact's status there; an entry older than the latest is kept but was
    not applied. Written only by `contacts.consent.consent_record`."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_entries")
    channel = models.CharField(max_length=60)
    status = models.CharField(max_length=20)
    previous_status = models.CharField(
        max_length=20, blank=True, help_text="The channel's status before this change, if known."
    )
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    source_label = models.CharField(
        max_length=150, blank=True, help_text="Who or what: the user, file or destination."
    )
    occurred_at = models.DateTimeField(help_text="When the change happened, by its source.")
    recorded_at = models.DateTimeField(auto_now_add=True)
    applied = models.BooleanField(
        default=True, help_text="False when a later change of this channel was already known."
    )
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "consent entries"
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "channel", "-occurred_at"], name="consent_latest"),
        ]

    def __str__(self):
        return f"{self.channel}: {self.status} ({self.get_source_display()})"

    @property
    def is_opt_in(self) -> bool:
        return self.status in OPT_IN_STATUSES


class ImportJob(models.Model):
    """One CSV import run in the background (`contacts.services.import_job_*`): the file as
    uploaded, kept in the database (durable, seen by every web host and worker) until the
    import ends, then the progress and outcome the progress page shows.

    `content` is emptied when the import is done (the rows are in the contacts then); it is
    kept after a failure, so that nothing is lost and the import can be started again. The
    invalid rows (`invalid_json`: their cells and errors, for the page and the skipped-rows
    CSV) and the first page of the preview (`preview_json`) hold people's data too: the
    erasure (`import_files_erase`) removes every job that names an erased person."""

    class Status(models.TextChoices):
        PREVIEWING = "previewing", "checking the rows"
        PREVIEWED = "previewed", "checked, waiting for confirmation"
        IMPORTING = "importing", "importing"
        DONE = "done", "done"
        REFUSED = "refused", "nothing imported: rows have errors"
        FAILED = "failed", "failed"

    class Mode(models.TextChoices):
        ALL = "all", "All or nothing"
        SKIP = "skip", "Import the valid rows, skip the rest"

    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PREVIEWING)
    mode = models.CharField(max_length=8, choices=Mode.choices, blank=True)
    total_rows = models.PositiveIntegerField(default=0)
    validated_rows = models.PositiveIntegerField(default=0)
    written_rows = models.PositiveIntegerField(default=0)
    # after a failure part-way: the file's row to resume from (the rows before are saved)
    start_row = models.PositiveIntegerField(default=1)
    invalid_rows = models.PositiveIntegerField(default=0)
    clearings = models.PositiveIntegerField(default=0)
    totals = models.JSONField(default=dict, blank=True)
    preview_json = models.TextField(blank=True)
    invalid_json = models.TextField(blank=True)
    failure = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Import {self.pk} ({self.file_name})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.REFUSED, self.Status.FAILED)
