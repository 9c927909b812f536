"""Admin forms: everything a person can fix is refused here, on the field that is wrong."""

from collections import Counter

from django import forms
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.utils.functional import cached_property

from contacts import validators
from contacts.models import MAX_CHANNELS_PER_TYPE, MAX_EXTERNAL_URLS, Channel, Contact
from contacts.widgets import ChoicesListedOnce, FixedChoicesSelect, FixedChoicesSelect2


class TagsField(forms.CharField):
    """Tags typed as comma-separated text, kept as a list of distinct, trimmed strings."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        tags = []
        for tag in (part.strip() for part in text.split(",")):
            if tag and tag not in tags:
                tags.append(tag)
        return tags


TIME_ZONE_CHOICES = ChoicesListedOnce(validators.time_zone_choices)


class TimeZoneField(forms.ChoiceField):
    """The IANA zones in a searchable select (unfold's select2); a value posted in another
    case (europe/london) is read as its zone."""

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", TIME_ZONE_CHOICES)
        kwargs.setdefault("widget", FixedChoicesSelect2)
        super().__init__(**kwargs)

    def to_python(self, value):
        return validators.canonical_time_zone(super().to_python(value))

    def validate(self, value):
        if value:
            validators.validate_time_zone(value)  # its own message, not "not one of the choices"


class ContactForm(forms.ModelForm):
    tags = TagsField(required=False, help_text="Comma-separated.")
    time_zone = TimeZoneField(
        required=False, label="Time zone", help_text="IANA name: type to search (e.g. London)."
    )

    class Meta:
        model = Contact
        fields = [  # groups are edited inline, through GroupMembership
            "first_name",
            "last_name",
            "email",
            "phone",
            "external_id",
            "language",
            "time_zone",
            "birth_date",
            "gender",
            "user_group",
            "tags",
            "address_line",
            "city",
            "region",
            "postal_code",
            "country",
            "email_status",
            "sms_status",
            "privacy_consent",
            "gdpr_marketing_consent",
            "terms_accepted",
            "consent_date",
            "consent_ip",
            "last_latitude",
            "last_longitude",
        ]
        # unfold's selects, their long option lists rendered once (contacts.widgets)
        widgets = {"language": FixedChoicesSelect, "country": FixedChoicesSelect}

    # The statuses as the person saw them are posted back (Django's hidden "initial-" input),
    # so that a save tells a status the person changed from one a platform changed since the
    # page was opened (an opt-out arriving meanwhile must not be overwritten by a stale page).
    STATUS_FIELDS = ("email_status", "sms_status")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.STATUS_FIELDS:
            if name in self.fields:
                self.fields[name].show_hidden_initial = True

    def untouched_statuses(self) -> list[str]:
        """The statuses the person left as the page showed them."""
        return [
            name
            for name in self.STATUS_FIELDS
            if name in self.fields and name not in self.changed_data
        ]

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email:
            # Repeats the unique index's expression and condition, so the index answers.
            others = (
                Contact.objects.exclude(email="")
                .annotate(email_ci=Lower("email"))
                .filter(email_ci=email.lower())
            )
            if self.instance.pk:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                raise ValidationError("A contact with this email already exists.")
        return email

    def clean(self):
        cleaned = super().clean()
        phone = cleaned.get("phone")
        if phone:
            try:
                cleaned["phone"] = validators.normalize_phone(
                    phone, country=cleaned.get("country") or ""
                )
            except ValidationError as err:
                self.add_error("phone", err)
        return cleaned


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["type", "value"]

    def __init__(self, *args, contact: Contact, **kwargs):
        super().__init__(*args, **kwargs)
        self.contact = contact

    def clean(self):
        cleaned = super().clean()
        channel_type, value = cleaned.get("type"), cleaned.get("value")
        if channel_type and value:
            try:
                cleaned["value"] = validators.normalize_channel_value(
                    channel_type, value, country=self.contact.country
                )
            except ValidationError as err:
                self.add_error("value", err)
        return cleaned


class SharedChoicesFormSet(forms.BaseInlineFormSet):
    """Builds each foreign-key select's choices once per formset, not once per row.

    Without this, every inline row (and the blank template row) runs its own query for the
    options of its select, so the contact page would cost one query per row.
    """

    def __init__(self, *args, **kwargs):
        self._shared_choices = {}
        super().__init__(*args, **kwargs)

    @cached_property
    def empty_form(self):
        """The blank template row, built once: Django builds it anew on every access, and
        the admin's inline templates reach it about six times a formset (each pass over the
        inline's rows, its headings, its media), a fifth of the contact page's form work."""
        return super().empty_form

    def add_fields(self, form, index):
        super().add_fields(form, index)
        # The hidden primary key and the parent link are model choice fields too, but they
        # render no options: only real selects are shared.
        pk_name = self.model._meta.pk.name
        skipped = {self.fk.name, pk_name}
        for name, field in form.fields.items():
            if isinstance(field, forms.ModelChoiceField) and name not in skipped:
                if name not in self._shared_choices:
                    # iter(): list() of the iterator itself would first ask its length,
                    # a COUNT(*) of the catalogue before the query that reads it
                    self._shared_choices[name] = list(iter(field.choices))
                field.choices = self._shared_choices[name]
                inner_widget = getattr(field.widget, "widget", None)  # admin's wrapper
                if inner_widget is not None:
                    inner_widget.choices = self._shared_choices[name]
                if field.to_field_name in (None, field.queryset.model._meta.pk.name):
                    listed = {v.value: v.instance for v, _ in field.choices if v != ""}
                    field.to_python = _found_in(listed, field)
        pk_field = form.fields.get(pk_name)
        if isinstance(pk_field, forms.ModelChoiceField) and form.is_bound:
            # the posted row's id: the formset has read the contact's rows already
            pk_field.to_python = _found_in(self._contact_rows(), pk_field)

    def _contact_rows(self) -> dict:
        """The inline's rows of this contact by primary key, as the formset read them (the
        same dict Django's `_existing_object` reads each posted row from)."""
        self._existing_object(None)  # fills it on first use
        return self._object_dict


def _found_in(listed: dict, field: forms.ModelChoiceField):
    """`field`'s `to_python`, answered from `listed` (primary key to instance, rows already
    read in this request) instead of a query per posted row: a save validated three queries
    per unchanged inline row. A value not found there (or not a key at all) goes to
    Django's own lookup, which queries and raises as it always does; the model's own
    foreign-key check (`Model.full_clean`) still asks the database that the row exists."""
    django_lookup = field.to_python
    to_key = field.queryset.model._meta.pk.to_python

    def to_python(value):
        if value in field.empty_values:
            return None
        try:
            found = listed.get(to_key(value))
        except (ValidationError, TypeError):
            found = None
        return found if found is not None else django_lookup(value)

    return to_python


class ChannelFormSet(SharedChoicesFormSet):
    """Counts the contact's own email and phone as its primary email and SMS channels."""

    def get_form_kwargs(self, index):
        # The parent contact, with the values of the form above it: a phone channel without
        # "+" is read in the contact's country.
        return {**super().get_form_kwargs(index), "contact": self.instance}

    def clean(self):
        super().clean()
        contact = self.instance
        counts = Counter({"email": int(bool(contact.email)), "sms": int(bool(contact.phone))})
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
                continue
            if form.cleaned_data.get("type"):
                counts[form.cleaned_data["type"]] += 1
        too_many = sorted(t for t, n in counts.items() if n > MAX_CHANNELS_PER_TYPE)
        if too_many:
            raise ValidationError(
                f"At most {MAX_CHANNELS_PER_TYPE} channels of one type, the contact's own "
                f"email and phone included: too many of {', '.join(too_many)}."
            )


class ExternalUrlFormSet(SharedChoicesFormSet):
    """iVvy takes at most three external URLs; a fourth is refused here, not lost there."""

    def clean(self):
        super().clean()
        kept = [
            form
            for form in self.forms
            if getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE")
        ]
        if len(kept) > MAX_EXTERNAL_URLS:
            raise ValidationError(
                f"A contact has at most {MAX_EXTERNAL_URLS} external URLs ({len(kept)} given)."
            )
