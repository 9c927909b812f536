"""What a connector declares about its platform's destination page: the credentials it needs
and the settings it takes. The Destination model stays platform-neutral (two columns naming
credential variables, one `settings` JSON object); the admin renders and the model validates
what the connector declares here."""

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

CREDENTIAL_FIELDS = ("key_env", "secret_env")  # the Destination columns naming variables


@dataclass(frozen=True)
class Credential:
    """A secret the platform needs. `field` is the Destination column that names the
    environment variable holding it; `label` and `help_text` are shown beside that column."""

    field: str
    label: str
    help_text: str = ""

    def __post_init__(self):
        if self.field not in CREDENTIAL_FIELDS:
            raise ValueError(f"a credential is named in one of {CREDENTIAL_FIELDS}")


@dataclass(frozen=True)
class Setting:
    """One non-secret setting of a destination on this platform (an account ID, a region, a
    matching switch), kept in `Destination.settings[name]`.

    `choices` makes it a choice of those values; `boolean` a checkbox."""

    name: str
    label: str
    help_text: str = ""
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    boolean: bool = False
    max_length: int = 100

    @property
    def default(self) -> Any:
        return False if self.boolean else ""

    def form_field(self) -> forms.Field:
        common = {"label": self.label, "help_text": self.help_text}
        if self.boolean:
            return forms.BooleanField(required=False, **common)
        if self.choices:
            choices = self.choices if self.required else (("", "---------"), *self.choices)
            return forms.ChoiceField(choices=choices, required=self.required, **common)
        return forms.CharField(max_length=self.max_length, required=self.required, **common)

    def clean(self, value: Any) -> Any:
        """The stored form of `value`; raises ValidationError with the reason."""
        if self.boolean:
            if not isinstance(value, bool):
                raise ValidationError(f"{self.label}: yes or no.")
            return value
        value = "" if value is None else value
        if not isinstance(value, str):
            raise ValidationError(f"{self.label}: a text value.")
        value = value.strip()
        if self.required and not value:
            raise ValidationError(f"{self.label} is required.")
        if value and self.choices and value not in dict(self.choices):
            allowed = ", ".join(code for code, _ in self.choices)
            raise ValidationError(f"{self.label}: one of {allowed}.")
        if len(value) > self.max_length:
            raise ValidationError(f"{self.label}: at most {self.max_length} characters.")
        return value


def clean_settings(declared: tuple[Setting, ...], values: dict) -> dict:
    """`values` checked against the declared settings: unknown keys dropped, each value in
    its stored form. Raises ValidationError {setting name: message}."""
    if not isinstance(values, dict):
        values = {}
    cleaned, problems = {}, {}
    for setting in declared:
        try:
            cleaned[setting.name] = setting.clean(values.get(setting.name, setting.default))
        except ValidationError as err:
            problems[setting.name] = err.messages
    if problems:
        raise ValidationError(problems)
    return cleaned
