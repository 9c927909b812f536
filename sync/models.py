"""Destinations (one account on one platform) and their mappings."""

from django.core.exceptions import ValidationError
from django.db import models

from contacts.models import CustomFieldDefinition, Group, MailingList
from sync import connectors
from sync.connectors.records import STANDARD_FIELDS


class Destination(models.Model):
    """One configured account on one platform. Secrets stay in the environment: the
    destination only names the variables that hold them."""

    name = models.CharField(max_length=100, unique=True)
    platform = models.CharField(max_length=20, choices=connectors.as_choices)
    base_url = models.URLField(
        "base URL", blank=True,
        help_text="Leave blank for the platform's production URL (or the region's).",
    )
    region = models.CharField(
        max_length=20, blank=True,
        help_text="iVvy: au, us or uk. Cendyn CRM: eu or us. Ignored when a base URL is set.",
    )
    account_id = models.CharField(
        "account ID", max_length=100, blank=True, help_text="Cendyn CRM's account ID (not secret)."
    )
    key_env = models.CharField(
        "API key variable", max_length=100, blank=True,
        help_text="Name of the environment variable holding the API key (Yespo, Loops), "
        "the API key (iVvy) or the account secret (Cendyn CRM).",
    )
    secret_env = models.CharField(
        "API secret variable", max_length=100, blank=True,
        help_text="iVvy only: name of the environment variable holding the API secret.",
    )
    enabled = models.BooleanField(default=True)
    push_on_save = models.BooleanField(default=True)
    delete_on_platform = models.BooleanField(
        default=False, help_text="Delete the contact on the platform when it is deleted here."
    )
    marketing_consent_only = models.BooleanField(
        "only contacts with GDPR marketing consent", default=False
    )
    update_if_exists = models.BooleanField(
        default=False,
        help_text="iVvy only: let iVvy match a contact without an id by first name, last name "
        "and email (updateIfExists).",
    )
    rate_limit = models.FloatField(
        null=True, blank=True, help_text="Requests per second. Blank: the platform's default."
    )
    timeout = models.FloatField(default=10.0, help_text="Seconds to wait for an answer.")
    options_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def connector_class(self):
        return connectors.get_class(self.platform)

    @property
    def effective_base_url(self) -> str:
        cls = self.connector_class
        return self.base_url or cls.regions.get(self.region) or cls.default_base_url

    @property
    def effective_rate_limit(self) -> float:
        return self.rate_limit or self.connector_class.default_rate_limit

    def clean(self):
        if self.platform not in connectors.CONNECTORS:
            return
        cls = self.connector_class
        if self.region and self.region not in cls.regions:
            allowed = ", ".join(cls.regions) or "none"
            raise ValidationError({"region": f"{cls.label} regions: {allowed}."})
        missing = [f for f in cls.credentials.values() if not getattr(self, f)]
        if missing:
            raise ValidationError(
                {f: "Name the environment variable that holds this credential." for f in missing}
            )
        if self.platform == "cendyn" and not self.account_id:
            raise ValidationError({"account_id": "Cendyn CRM needs the account ID."})


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


class FieldMapping(models.Model):
    """One of our fields -> the platform's field. Unmapped fields are not sent."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="field_mappings"
    )
    standard_field = models.CharField(
        max_length=40, blank=True, choices=list(STANDARD_FIELDS.items())
    )
    custom_field = models.ForeignKey(
        CustomFieldDefinition, null=True, blank=True, on_delete=models.CASCADE,
        related_name="mappings",
    )
    remote_field = models.CharField(
        max_length=200,
        help_text="Yespo field id, iVvy fieldId, Cendyn custom field name or Loops property name.",
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

    @property
    def source_key(self) -> str:
        return self.standard_field or f"custom:{self.custom_field.name}"


class ListMapping(models.Model):
    """One of our groups or mailing lists -> the platform's list of its own kind."""

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
