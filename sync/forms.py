"""The destination form: platform-neutral columns, plus what the platform's connector declares
(the meaning of its credential variables, its own settings), so that adding a platform needs
no form code."""

from django import forms

from sync import connectors
from sync.models import Destination

SETTING_PREFIX = "setting_"


def platform_of(request, obj=None) -> str:
    """The platform a destination page is about: the one being posted, the one asked for on
    the add page (`?platform=`), else the stored one."""
    slug = request.POST.get("platform") or request.GET.get("platform") or ""
    if not slug and obj is not None:
        slug = obj.platform
    return slug if slug in connectors.CONNECTORS else ""


def setting_field_names(connector_class) -> list[str]:
    if connector_class is None:
        return []
    return [SETTING_PREFIX + s.name for s in connector_class.destination_settings]


def credential_field_names(connector_class) -> list[str]:
    """The credential columns the platform uses: its API credentials, then the secrets its
    inbound verifier needs (optional)."""
    if connector_class is None:
        return ["key_env", "secret_env"]
    fields = [c.field for c in connector_class.credentials.values()]
    return fields + [
        c.field for c in connector_class.inbound_credentials.values() if c.field not in fields
    ]


class DestinationForm(forms.ModelForm):
    """Subclassed per platform by `destination_form_for`; `connector_class` is None on an add
    page whose platform is not chosen yet."""

    connector_class = None

    class Meta:
        model = Destination
        fields = [  # `settings` is shown as the platform's own fields (see below)
            "name",
            "platform",
            "enabled",
            "push_on_save",
            "base_url",
            "key_env",
            "secret_env",
            "sync_mode",
            "marketing_consent_only",
            "delete_on_platform",
            "recreate_deleted",
            "apply_opt_outs_from_others",
            "rate_limit",
            "timeout",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "sync_mode" in self.fields:
            self.fields["sync_mode"].required = False  # left out: create or update, as before
        cls = self.connector_class
        if cls is None:
            return
        for credential in cls.credentials.values():
            if credential.field in self.fields:
                self.fields[credential.field].label = credential.label
                self.fields[credential.field].help_text = credential.help_text
                self.fields[credential.field].required = True
        for credential in cls.inbound_credentials.values():
            if credential.field in self.fields:
                self.fields[credential.field].label = credential.label
                self.fields[credential.field].help_text = credential.help_text
                self.fields[credential.field].required = False
        stored = self.instance.settings or {}
        for setting in cls.destination_settings:
            name = SETTING_PREFIX + setting.name
            if name in self.fields:
                self.fields[name].initial = stored.get(setting.name, setting.default)

    def clean_sync_mode(self):
        return self.cleaned_data.get("sync_mode") or Destination.SyncMode.UPSERT

    def clean(self):
        cleaned = super().clean()
        cls = self.connector_class
        if cls is not None:
            values = {}
            for setting in cls.destination_settings:
                name = SETTING_PREFIX + setting.name
                if name not in self.fields:
                    continue
                try:
                    values[setting.name] = setting.clean(cleaned.get(name, setting.default))
                except forms.ValidationError as err:
                    self.add_error(name, err)
            self.instance.settings = values
        return cleaned


def destination_form_for(connector_class) -> type[DestinationForm]:
    """A DestinationForm with a field for each setting the platform declares."""
    attrs = {"connector_class": connector_class}
    if connector_class is not None:
        for setting in connector_class.destination_settings:
            attrs[SETTING_PREFIX + setting.name] = setting.form_field()
    return type("DestinationForm", (DestinationForm,), attrs)
