"""The admin marketing staff work in: contacts with their children inline, and the catalogues
(custom fields, groups, mailing lists) on their own pages."""

from django.contrib import admin

from contacts import forms
from contacts.models import (
    Channel,
    Contact,
    CustomFieldDefinition,
    CustomFieldValue,
    ExternalUrl,
    Group,
    GroupMembership,
    MailingList,
    MailingListSubscription,
    MAX_EXTERNAL_URLS,
)


class ChannelInline(admin.TabularInline):
    model = Channel
    form = forms.ChannelForm
    formset = forms.ChannelFormSet
    extra = 0


class CustomFieldValueInline(admin.TabularInline):
    model = CustomFieldValue
    formset = forms.SharedChoicesFormSet
    extra = 0
    verbose_name = "custom field"


class GroupMembershipInline(admin.TabularInline):
    model = GroupMembership
    formset = forms.SharedChoicesFormSet
    extra = 0
    verbose_name = "group"


class MailingListSubscriptionInline(admin.TabularInline):
    model = MailingListSubscription
    formset = forms.SharedChoicesFormSet
    extra = 0
    verbose_name = "mailing list"


class ExternalUrlInline(admin.TabularInline):
    model = ExternalUrl
    formset = forms.ExternalUrlFormSet
    extra = 0
    max_num = MAX_EXTERNAL_URLS


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = forms.ContactForm
    list_display = [
        "__str__",
        "email",
        "phone",
        "external_id",
        "country",
        "email_status",
        "sms_status",
        "updated_at",
    ]
    list_filter = [
        "email_status",
        "sms_status",
        ("country", admin.AllValuesFieldListFilter),
        ("language", admin.AllValuesFieldListFilter),
        "groups",
    ]
    search_fields = ["first_name", "last_name", "email", "phone", "=external_id"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [
        ChannelInline,
        CustomFieldValueInline,
        GroupMembershipInline,
        MailingListSubscriptionInline,
        ExternalUrlInline,
    ]
    fieldsets = [
        (None, {"fields": ["first_name", "last_name", "email", "phone", "external_id"]}),
        ("Profile", {"fields": ["language", "time_zone", "birth_date", "gender", "user_group", "tags"]}),
        ("Address", {"fields": ["address_line", "city", "region", "postal_code", "country"]}),
        ("Subscriptions and consent", {
            "fields": [
                "email_status", "sms_status", "privacy_consent", "gdpr_marketing_consent",
                "terms_accepted", "consent_date", "consent_ip",
            ]
        }),
        ("Location", {"fields": ["last_latitude", "last_longitude"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "type"]
    search_fields = ["name"]


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(MailingList)
class MailingListAdmin(admin.ModelAdmin):
    search_fields = ["name"]
