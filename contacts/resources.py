"""Contacts as CSV rows, for django-import-export's import and export in the admin.

Import: a row updates the contact with its `external_id`, else the contact with its email
(ignoring case), else creates one. Every value goes through the checks the admin form makes
(`contacts.validators` and the model's own validators), and a bad value is reported on its
row and column; nothing is saved until the person confirms the preview.

A blank cell clears a text, date or number value. Where the model has a default (the email
and SMS statuses, the consent flags) a blank cell keeps the contact's value, so a file with
an empty column can never resubscribe a contact or withdraw a consent by accident. A blank
`external_id` keeps the contact's own (a new contact gets a generated one).

`groups` and `tags` are comma-separated. Groups are named, and must exist: an import never
creates a group, and it only adds memberships (removing one is done on the contact's page,
where the delete permission is checked).

Export neutralises spreadsheet formulas: see `neutralise_formula`.
"""

import decimal
import functools
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import NOT_PROVIDED, F, Lookup
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.encoding import force_str
from import_export import fields, resources, widgets
from simple_history.utils import bulk_create_with_history

from contacts import validators
from contacts.consent import consent_record_changes
from contacts.models import ConsentSource, Contact, Group, GroupMembership
from contacts.selectors import tombstone_hash_forms, tombstone_index

# OWASP, CSV Injection: a cell that starts with one of these may be run as a formula by a
# spreadsheet. https://owasp.org/www-community/attacks/CSV_Injection
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

EMAIL_CONSTRAINT = "contact_email_unique_ci"  # unique email, ignoring case
EMAIL_TAKEN = next(
    c.violation_error_message for c in Contact._meta.constraints if c.name == EMAIL_CONSTRAINT
)

# The model's fields whose choices are a list of codes (ISO countries and languages), checked
# against a set: Django's own check walks the whole list for every row.
LISTED_CHOICES = {
    "country": lambda: _codes(validators.country_choices),
    "language": lambda: _codes(validators.language_choices),
}


STATUS_COLUMNS = ("email_status", "sms_status")  # their changes are consent ledger entries


@functools.cache
def _codes(choices) -> frozenset[str]:
    return frozenset(code for code, _ in choices())


COLUMNS = [
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "time_zone",
    "address_line",
    "city",
    "region",
    "postal_code",
    "country",
    "birth_date",
    "gender",
    "user_group",
    "tags",
    "groups",
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


def neutralise_formula(text: str) -> str:
    """Prefix a cell that a spreadsheet would read as a formula with one apostrophe.

    OWASP's recommendation: the cell shows as text, and the value stays readable, which
    matters for phone numbers (`+441632960961` is exported as `'+441632960961`). The guard
    looks past leading blanks (spreadsheets ignore them: `" =1+1"` is a formula too).

    A value that already starts with an apostrophe gets one more (`'hello` -> `''hello`), so
    that `restore_formula` can tell our guard from an apostrophe a person typed: every
    exported value comes back exactly as it was stored."""
    return f"'{text}" if _needs_guard(text) else text


def restore_formula(text: str) -> str:
    """The inverse of `neutralise_formula`: one leading apostrophe is removed when what
    follows is a value the export would have guarded (its first non-blank character is a
    formula trigger, or it starts with tab, carriage return or another apostrophe).

    `'+44…` -> `+44…`, `''=x` -> `'=x`, `' =1` -> ` =1`; `'hello` and any other text are
    unchanged. A lone `'=x` written by hand becomes `=x`, which is what a spreadsheet means
    by it too (there a leading apostrophe only marks a cell as text); the person's `=x` is
    then guarded again on its next export."""
    if text.startswith("'") and _needs_guard(text[1:]):
        return text[1:]
    return text


def _needs_guard(text: str) -> bool:
    return text.startswith(("\t", "\r", "'")) or text.lstrip().startswith(FORMULA_TRIGGERS)


def split_list(value) -> list[str]:
    """`"a, b,,a"` -> `["a", "b"]`: trimmed, distinct, in the order given."""
    items = []
    for item in (part.strip() for part in str(value or "").split(",")):
        if item and item not in items:
            items.append(item)
    return items


class TextWidget(widgets.CharWidget):
    """Text, trimmed, with an exported formula guard taken off. A blank cell is "" when the
    model field may be blank, else None (which leaves the field as it is)."""

    def __init__(self, coerce_to_string=True, allow_blank=False):
        super().__init__(coerce_to_string=coerce_to_string, allow_blank=allow_blank)

    def clean(self, value, row=None, **kwargs):
        text = restore_formula(str(value if value is not None else "").strip())
        if not text and not self.allow_blank:
            return None
        return text


# A matching column's cell as text (None when blank): one widget for every cell, not one each.
_cell_text = TextWidget().clean


class BooleanCellWidget(widgets.BooleanWidget):
    """true/false, 1/0 or yes/no in any case; a blank cell is None; anything else an error
    (the stock widget reads every unknown word as False, which would withdraw a consent)."""

    WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def clean(self, value, row=None, **kwargs):
        if value is None or value is True or value is False:
            return value
        text = str(value).strip().lower()
        if not text:
            return None
        if text not in self.WORDS:
            raise ValueError(f"Enter true or false (or 1/0, yes/no), not {value!r}.")
        return self.WORDS[text]


class DecimalCellWidget(widgets.DecimalWidget):
    """A number; one that does not parse is a row error, not a crash of the import."""

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row, **kwargs)
        except decimal.InvalidOperation as err:
            raise ValueError(f"Enter a number, not {value!r}.") from err


class TagsWidget(widgets.Widget):
    """Tags as comma-separated text, kept as the list the model stores."""

    def clean(self, value, row=None, **kwargs):
        return split_list(restore_formula(str(value or "").strip()))

    def render(self, value, obj=None, **kwargs):
        return ", ".join(value or [])


class GroupNamesWidget(widgets.Widget):
    """Group names, comma-separated. An unknown name is an error: groups are never created.

    The catalogue is read once per import (`forget_groups()` starts a new one), not per row."""

    def __init__(self):
        super().__init__()
        self.forget_groups()

    def forget_groups(self) -> None:
        self._by_name: dict[str, Group] | None = None

    def clean(self, value, row=None, **kwargs) -> list[Group]:
        names = split_list(restore_formula(str(value or "").strip()))
        if names and self._by_name is None:
            self._by_name = {group.name: group for group in Group.objects.all()}
        found = self._by_name or {}
        unknown = [name for name in names if name not in found]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise ValueError(
                f"Unknown group {listed}: an import does not create groups; add it under "
                "Groups first, or correct the name."
            )
        return [found[name] for name in names]

    def render(self, value, obj=None, **kwargs):
        if value is None:  # an unsaved contact has no groups yet
            return ""
        return ", ".join(sorted(group.name for group in value.all()))


class GroupsField(fields.Field):
    """The contact's groups. The memberships can only be written once the contact is saved:
    the cleaned groups wait on the instance for `ContactResource.after_save_instance`."""

    def save(self, instance, row, is_m2m=False, **kwargs):
        instance._imported_groups = self.clean(row, **kwargs)


ERASED_PERSON = (
    "This person was erased here (GDPR erasure): importing the row would create them again. "
    "Remove the row. Should they sign up again, add them by hand on the contact page."
)


@dataclass
class RowCheck:
    """One row as `ContactResource.check_rows` found it. `number` counts from 1 in the dataset
    checked; `kind` is "new", "update", "skip" (the contact is as the row says) or "invalid"
    (then `errors` maps a column, or "" for the row as a whole, to its messages). For a valid
    row, `instance` is the contact with the row's values (unsaved), `changed` the attributes the
    row changes, `added_groups` the groups it adds, and `cleared` the columns whose blank cell
    clears a stored value (column -> the value cleared, as the preview shows it)."""

    number: int
    kind: str
    instance: Contact | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    added_groups: list[Group] = field(default_factory=list)
    cleared: dict[str, str] = field(default_factory=dict)


def _messages(err: ValidationError) -> dict[str, list[str]]:
    """A row's errors as the preview lists them: column -> messages, "" for the row's own."""
    by_field = err.message_dict if hasattr(err, "error_dict") else {NON_FIELD_ERRORS: err.messages}
    errors = {str(k): [str(m) for m in v] for k, v in by_field.items() if k != NON_FIELD_ERRORS}
    if by_field.get(NON_FIELD_ERRORS):
        errors[""] = [str(m) for m in by_field[NON_FIELD_ERRORS]]
    return errors


class ContactResource(resources.ModelResource):
    external_id = fields.Field(
        attribute="external_id",
        column_name="external_id",
        widget=TextWidget(),
        saves_null_values=False,
    )
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    groups = GroupsField(attribute="groups", column_name="groups", widget=GroupNamesWidget())

    WIDGETS_MAP = {
        **resources.ModelResource.WIDGETS_MAP,
        "CharField": TextWidget,
        "GenericIPAddressField": TextWidget,
        "BooleanField": BooleanCellWidget,
        "DecimalField": DecimalCellWidget,
    }

    class Meta:
        model = Contact
        fields = COLUMNS
        clean_model_instances = True  # the model's validators judge every row
        # A row that changes nothing is not saved: no history entry, no push (a file
        # imported again each night only touches the contacts that changed).
        skip_unchanged = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._duplicate_external_ids: dict[str, list[int]] = {}
        self._row_of_contact: dict[int, int] = {}  # contact pk -> the row that imported it
        self._row_of_email: dict[str, int] = {}  # lowercased email -> its first row
        self._validate_only = False
        self._row_number = 0
        self._looked_up_email: tuple[str, int | None] | None = None
        self._tombstones: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        self._stored_email = ""
        self._row_offset = 0  # the file's rows before this call's dataset (chunked checks)
        # A check (no write) looks the rows' contacts up per chunk, in two queries; None:
        # per row (a write, where a contact may have appeared since the chunk began).
        self._known: tuple[dict[str, Contact], dict[str, Contact], set[str]] | None = None
        self._keep_file_state = False
        # The model fields a row checked in bulk leaves as they were (`_check_row`): their
        # values were checked when stored (or are the model's defaults) and are not again.
        self._unchanged_fields: frozenset[str] = frozenset()

    @classmethod
    def field_from_django_field(cls, field_name, django_field, readonly):
        field = super().field_from_django_field(field_name, django_field, readonly)
        # A blank cell is never read as "the model's default" (an unsubscribed contact would
        # be resubscribed): where there is a default, a blank cell leaves the value alone.
        field.default = NOT_PROVIDED
        field.saves_null_values = not django_field.has_default()
        return field

    # ------------------------------------------------------------------------- import

    def import_data(self, dataset, dry_run=False, **kwargs):
        """A dry run (the preview) validates every row and writes nothing: no transaction is
        opened, so it never holds SQLite's write lock. (The library's own dry run saves every
        row inside a transaction and rolls it back.) A real run is as the library's; see
        `contacts.services.contacts_import_write` for the one that writes in chunks."""
        if not dry_run:
            return super().import_data(dataset, dry_run=False, **kwargs)
        kwargs.pop("use_transactions", None)
        self._validate_only = True
        self._known = _contacts_of_rows(dataset)
        try:
            return super().import_data(dataset, dry_run=False, use_transactions=False, **kwargs)
        finally:
            self._validate_only = False
            self._known = None

    def save_instance(self, instance, is_create, row, **kwargs):
        """Saved as the library does; a changed email or SMS status (any, on a create) is an
        import's consent change in the ledger, through the admin's own writer
        (`contacts.consent`)."""
        if self._validate_only:
            return
        before = {}
        if not is_create and instance.pk is not None:
            before = Contact.objects.filter(pk=instance.pk).values(*STATUS_COLUMNS).first() or {}
        super().save_instance(instance, is_create, row, **kwargs)
        user = kwargs.get("user")
        consent_record_changes(
            contact=instance,
            before=before,
            source=ConsentSource.IMPORT,
            source_label=f"import by {user.get_username()}" if user else "import",
            now=timezone.now(),
        )

    def begin_file(self, dataset) -> None:
        """Check a file in several calls of `import_data`, a chunk of rows each (the
        background import: memory stays bounded). The checks across rows (duplicate external
        IDs, two rows for one contact or one email) see the whole file: its state is set up
        here, once, and kept by each chunk's `before_import`. Set `row_offset` before each
        chunk so that messages name the file's rows."""
        self._keep_file_state = False
        self.before_import(dataset)
        self._keep_file_state = True

    @property
    def row_offset(self) -> int:
        return self._row_offset

    @row_offset.setter
    def row_offset(self, value: int) -> None:
        self._row_offset = value

    def before_import(self, dataset, **kwargs):
        if self._keep_file_state:
            return
        rows_by_id: dict[str, list[int]] = {}
        if "external_id" in (dataset.headers or []):
            for number, value in enumerate(dataset["external_id"], start=1):
                external_id = _cell_text(value)
                if external_id:
                    rows_by_id.setdefault(external_id, []).append(number)
        self._duplicate_external_ids = {k: v for k, v in rows_by_id.items() if len(v) > 1}
        self._row_of_contact = {}
        self._row_of_email = {}
        self.fields["groups"].widget.forget_groups()
        self._tombstones = tombstone_index()

    def before_import_row(self, row, **kwargs):
        self._row_number = self._row_offset + kwargs.get("row_number", 0)

    def get_instance(self, instance_loader, row):
        """The contact with the row's external ID, else with its email (ignoring case).

        Raises ValidationError when the email belongs to a contact with another external ID
        (platforms match on it: changing it would make a duplicate there), or when an earlier
        row of the file already imported the same contact or has the same email (checked on
        the file itself: a validation pass writes nothing, so the earlier row is not in the
        database yet)."""
        external_id = _cell_text(row.get("external_id"))
        email = _cell_text(row.get("email"))
        if email:
            earlier = self._row_of_email.setdefault(email.lower(), self._row_number)
            if earlier != self._row_number:
                message = f"Row {earlier} already imports this contact (the same email)."
                raise ValidationError({"email": message})
        contact, field = None, "external_id"
        self._looked_up_email = None  # (lowercased email, pk of its contact or None)
        if external_id:
            if self._known is not None:
                contact = self._known[0].get(external_id)
            else:
                contact = Contact.objects.filter(external_id=external_id).first()
        if contact is None and email:
            if self._known is not None:
                contact, field = self._known[1].get(email.lower()), "email"
            else:
                contact, field = _contact_with_email(email), "email"
            self._looked_up_email = (email.lower(), contact.pk if contact else None)
            if contact is not None and external_id:
                message = (
                    f"The email {email} belongs to the contact with external ID "
                    f"{contact.external_id!r}. An import does not change a contact's "
                    "external ID: give that one, or leave the cell blank."
                )
                raise ValidationError({"external_id": message})
        # The email as stored: a file that has it in another case does not rewrite it.
        self._stored_email = contact.email if contact is not None else ""
        if contact is not None:
            earlier = self._row_of_contact.get(contact.pk)
            if earlier is not None and external_id not in self._duplicate_external_ids:
                raise ValidationError({field: f"Row {earlier} already imports this contact."})
            self._row_of_contact[contact.pk] = self._row_number
        return contact

    def import_instance(self, instance, row, **kwargs):
        """Set the row's values; collect every error of the row, each on its column."""
        errors: dict[str, list] = {}
        # As the library's `import_instance`, over the file's columns only (a file has a
        # few of the 26: the loop over the others was a tenth of a row's check).
        failed = {}
        for column in self._import_fields_of(row):
            try:
                column.save(instance, row, False, **kwargs)
            except ValueError as err:
                failed[column.attribute] = ValidationError(force_str(err), code="invalid")
        if failed:
            errors = ValidationError(failed).update_error_dict(errors)
        # Codes as the admin's selects send them, whatever case the file has.
        instance.country = (instance.country or "").upper()
        instance.language = (instance.language or "").lower()
        instance.time_zone = validators.canonical_time_zone(instance.time_zone or "")
        # Matching ignores the email's case; the stored spelling stays (JANE@ in the file
        # over jane@ here is the same contact, not a change to push).
        stored = getattr(self, "_stored_email", "")
        if stored and (instance.email or "").lower() == stored.lower():
            instance.email = stored
        for key, message in self._row_checks(instance, errors):
            errors.setdefault(key, []).append(ValidationError(message, code="invalid"))
        if errors:
            raise ValidationError(errors)

    def _row_checks(self, instance, errors):
        """The checks of the admin form that the model does not make itself, and the
        tombstone's: a row that would create a person erased here is refused, visibly."""
        if instance.pk is None:
            erased_emails, erased_ids = self._tombstones
            for key, erased in (("email", erased_emails), ("external_id", erased_ids)):
                if erased and tombstone_hash_forms(kind=key, value=getattr(instance, key)) & erased:
                    yield key, ERASED_PERSON
        rows = self._duplicate_external_ids.get(instance.external_id)
        if rows:
            listed = ", ".join(str(n) for n in rows)
            yield "external_id", f"{instance.external_id!r} is on more than one row ({listed})."
        # A phone is read in the row's country; a bad country is reported on its own column.
        country_valid = not instance.country or instance.country in LISTED_CHOICES["country"]()
        if instance.phone and "phone" not in errors and country_valid:
            try:
                instance.phone = _normalized_phone(instance.phone, instance.country)
            except ValidationError as err:
                yield "phone", " ".join(err.messages)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """The model's field checks and constraints, each error on its column.

        Two questions already answered are not asked again, row after row: the external ID's
        uniqueness (`get_instance` looked it up, `before_import` found the file's duplicates)
        and the email's (`get_instance` looked it up, or `_email_is_free` does, with the
        index the constraint has)."""
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude=[*errors, *LISTED_CHOICES, *self._unchanged_fields],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as err:
            errors = err.update_error_dict(errors)
        for name, allowed in LISTED_CHOICES.items():
            value = getattr(instance, name)
            if value and name not in errors and value not in allowed():
                message = Contact._meta.get_field(name).error_messages["invalid_choice"]
                errors[name] = [
                    ValidationError(message, code="invalid_choice", params={"value": value})
                ]
        other_constraints = [c for c in Contact._meta.constraints if c.name != EMAIL_CONSTRAINT]
        for constraint in other_constraints:
            try:
                constraint.validate(Contact, instance, exclude=set(errors))
            except ValidationError as err:
                errors = err.update_error_dict(errors)
        if instance.email and "email" not in errors and not self._email_is_free(instance):
            errors["email"] = [ValidationError(EMAIL_TAKEN, code="unique")]
        if errors:
            raise ValidationError(errors)

    def _email_is_free(self, instance) -> bool:
        email = instance.email.lower()
        if self._looked_up_email is not None and self._looked_up_email[0] == email:
            owner_pk = self._looked_up_email[1]
        elif self._known is not None and email in self._known[2]:
            owner = self._known[1].get(email)
            owner_pk = owner.pk if owner else None
        else:
            owner = _contact_with_email(email)
            owner_pk = owner.pk if owner else None
        return owner_pk is None or owner_pk == instance.pk

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """True when the row leaves the contact as it is (its groups included)."""
        if import_validation_errors or original.pk is None:
            return False
        groups = getattr(instance, "_imported_groups", None)
        if groups:
            existing = set(original.memberships.values_list("group_id", flat=True))
            if any(group.pk not in existing for group in groups):
                return False
        return all(
            field.get_value(instance) == field.get_value(original)
            for field in self.get_import_fields()
            if field is not self.fields["groups"]
        )

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        """As the library's, without its debug message for each column a row does not have
        (formatted even when debug logging is off: a third of the check's time)."""
        if field.attribute and field.column_name in row:
            field.save(instance, row, is_m2m, **kwargs)

    def _import_fields_of(self, row) -> list:
        """The import fields whose column the row has (every row of a file has the same),
        as the library's `import_instance` visits them, in order."""
        columns = tuple(row)
        cached = getattr(self, "_fields_of_columns", None)
        if cached is None or cached[0] != columns:
            fields_ = [
                f
                for f in self.get_import_fields()
                if f.attribute
                and f.column_name in row
                and not isinstance(f.widget, widgets.ManyToManyWidget)
            ]
            self._fields_of_columns = cached = (columns, fields_)
        return cached[1]

    def get_import_fields(self):
        """The library's list, worked out once per resource (it asks for it several times a
        row, and the fields never change during an import)."""
        if getattr(self, "_import_fields", None) is None:
            self._import_fields = super().get_import_fields()
        return self._import_fields

    # ----------------------------------------------------------- set-based check (in bulk)

    def check_rows(self, dataset, *, values_checked: bool = False) -> list[RowCheck]:
        """Every row of `dataset` checked as the library's `import_row` checks it in a dry run
        (this resource's `get_instance`, `import_instance`, `skip_row` rule and
        `validate_instance`: the same validators, errors on the same columns), nothing
        written, without the library's per-row machinery (the deep copy and the HTML diff of
        every row, its row results): the background import's check and write use this.

        The contacts the rows name are read for the whole dataset in two queries, and their
        group memberships in one. Call `begin_file` first when the dataset is a chunk of a
        larger file (the checks across rows then see the whole file); `row_offset` numbers
        the rows in messages, as in `import_data`.

        `values_checked`: the rows' values passed the model's field checks a moment ago (the
        chunk's check again in its write transaction, after the check of the whole file in
        the same task): only what the database answers is asked again (the contacts the rows
        name, the emails taken, tombstones, groups), not each value's own validators, which
        would answer as they did."""
        self._values_checked = values_checked
        if not self._keep_file_state:
            self.before_import(dataset)
        else:
            # What the database answers is read again for each chunk of a file (a chunk
            # checked in its write transaction sees an erasure or a group removed meanwhile).
            self.fields["groups"].widget.forget_groups()
            self._tombstones = tombstone_index()
        headers = list(dataset.headers or [])
        self._known = _contacts_of_rows(dataset)
        try:
            memberships = _memberships_of(self._known)
            return [
                self._check_row(dict(zip(headers, values, strict=False)), number, memberships)
                for number, values in enumerate(dataset, start=1)
            ]
        finally:
            self._known = None

    def _check_row(self, row: dict, number: int, memberships: dict[int, set[int]]) -> RowCheck:
        fields_ = [f for f in self.get_import_fields() if f is not self.fields["groups"]]
        try:
            self.before_import_row(row, row_number=number)
            instance = self.get_instance(None, row)
            new = instance is None
            if new:
                instance = self.init_instance(row)
            instance.__dict__.pop("_imported_groups", None)
            self.after_init_instance(instance, new, row)
            before = {f.attribute: getattr(instance, f.attribute) for f in fields_}
            errors: dict = {}
            try:
                self.import_instance(instance, row)
            except ValidationError as err:
                errors = err.update_error_dict(errors)
            changed = {a for a, was in before.items() if getattr(instance, a) != was}
            held = set() if new else memberships.get(instance.pk, set())
            groups = getattr(instance, "_imported_groups", None) or []
            added = [group for group in groups if group.pk not in held]
            if not errors and not new and not changed and not added:
                return RowCheck(number, "skip", instance)  # `skip_row`: not validated
            self._unchanged_fields = self._model_fields - (
                set() if self._values_checked else changed
            )
            try:
                self.validate_instance(instance, errors)
            finally:
                self._unchanged_fields = frozenset()
        except ValidationError as err:
            return RowCheck(number, "invalid", errors=_messages(err))
        except Exception as err:  # as the library: the row fails, not the import
            return RowCheck(number, "invalid", errors={"": [str(err)]})
        cleared = {} if new else self._cleared(fields_, before, instance, changed)
        return RowCheck(number, "new" if new else "update", instance, {}, changed, added, cleared)

    @functools.cached_property
    def _model_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in Contact._meta.concrete_fields)

    @staticmethod
    def _cleared(fields_, before: dict, instance, changed: set[str]) -> dict[str, str]:
        """The columns whose blank cell clears a stored value: exported, the value was
        something and is now nothing (what the library's diff shows as one deletion)."""
        cleared = {}
        for f in fields_:
            if f.attribute in changed:
                was = force_str(f.widget.render(before[f.attribute]))
                if was and not force_str(f.export(instance)):
                    cleared[f.column_name] = was
        return cleared

    def after_init_instance(self, instance, new, row, **kwargs):
        instance._import_is_new = new

    def after_save_instance(self, instance, row, **kwargs):
        """Add the row's groups, with their history records, in two statements.

        `bulk_create` sends no save signals and skips `ContactChild.save`: that is wanted here.
        The contact itself was just saved in this row, which raised its content_version and
        told the push-on-save receivers (one push per contact per transaction), so the
        memberships add neither a second bump nor a second push."""
        self._row_of_contact.setdefault(instance.pk, kwargs.get("row_number", 0))
        groups = getattr(instance, "_imported_groups", None)
        if not groups or instance.pk is None:
            return
        existing = set()
        if not getattr(instance, "_import_is_new", False):
            existing = set(instance.memberships.values_list("group_id", flat=True))
        added = [
            GroupMembership(contact=instance, group=group)
            for group in groups
            if group.pk not in existing
        ]
        if added:
            bulk_create_with_history(added, GroupMembership)

    # ------------------------------------------------------------------------- export

    def filter_export(self, queryset, **kwargs):
        return queryset.prefetch_related("groups")

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        if isinstance(value, str) and not isinstance(field.widget, widgets.NumberWidget):
            # A number is never a formula: a negative latitude stays a number.
            return neutralise_formula(value)
        return value


class TextIn(Lookup):
    """`field IN (texts)` that passes the texts as they are: Django's `__in` prepares,
    checks and compiles each value of the list, which for a chunk's 1,000 external IDs and
    emails cost more than the queries. PostgreSQL gets one array parameter (`= ANY(%s)`, the
    index on the column or on LOWER(email) still used), SQLite one parameter per text.

        Contact.objects.filter(TextIn(F("external_id"), ids))
    """

    lookup_name = "text_in"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [str(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*params, self.rhs]
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*params, *self.rhs]


def _contacts_of_rows(dataset) -> tuple[dict[str, Contact], dict[str, Contact], set[str]]:
    """The contacts the rows name, by external ID and by lowercased email, and the rows'
    lowercased emails: two queries for a chunk instead of up to three per row (the emails'
    through the constraint's index on LOWER)."""
    headers = dataset.headers or []
    ids, emails = set(), set()
    if "external_id" in headers:
        ids = {v for v in map(_cell_text, dataset["external_id"]) if v}
    if "email" in headers:
        emails = {v.lower() for v in map(_cell_text, dataset["email"]) if v}
    # no ORDER BY: both are unique, and the rows go into dicts
    found = Contact.objects.filter(TextIn(F("external_id"), ids)).order_by() if ids else []
    by_id = {c.external_id: c for c in found}
    by_email = {}
    if emails:
        found = (
            Contact.objects.annotate(email_ci=Lower("email"))
            .filter(TextIn(F("email_ci"), emails))
            .exclude(email="")
            .order_by()
        )
        by_email = {c.email.lower(): c for c in found}
    return by_id, by_email, emails


PHONES_KEPT = 100_000  # ~30 MB at most: a 100,000-row file's numbers, checked three times


@functools.lru_cache(maxsize=PHONES_KEPT)
def _normalized_phone(phone: str, country: str) -> str:
    """`validators.normalize_phone`, remembered: a background import checks every row for
    its preview, again before writing and once more in each chunk's transaction, and the
    number's parsing is a third of a row's check. (A number that is refused raises, and is
    not remembered.)"""
    return validators.normalize_phone(phone, country=country)


def _memberships_of(known) -> dict[int, set[int]]:
    """contact pk -> the pks of its groups, for the contacts `_contacts_of_rows` found."""
    pks = {c.pk for c in known[0].values()} | {c.pk for c in known[1].values()}
    found: dict[int, set[int]] = {}
    if pks:
        rows = GroupMembership.objects.filter(contact_id__in=pks).values_list(
            "contact_id", "group_id"
        )
        for contact_id, group_id in rows:
            found.setdefault(contact_id, set()).add(group_id)
    return found


def _contact_with_email(email: str) -> Contact | None:
    """The contact with this email, ignoring case (as the unique constraint compares).

    The constraint's condition (a non-blank email) is repeated so that the query can use
    its partial index on LOWER(email) instead of reading the whole table."""
    return (
        Contact.objects.annotate(email_ci=Lower("email"))
        .filter(email_ci=email.lower())
        .exclude(email="")
        .first()
    )
