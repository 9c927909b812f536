"""The admin's sidebar (django-unfold's `SIDEBAR.navigation`): each link carries the check of
the page it opens, so a role sees only the pages it may open (sync/roles.py)."""

from collections.abc import Callable

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse_lazy

from sync.views import VIEW_PERMISSION


def can_open_changelist(model_label: str) -> Callable[[HttpRequest], bool]:
    """A permission callable: may this user open the model's list? Asked of the model's own
    ModelAdmin, the same check its list page makes."""

    def check(request: HttpRequest) -> bool:
        model_admin = admin.site._registry.get(apps.get_model(model_label))
        return model_admin is not None and model_admin.has_view_or_change_permission(request)

    return check


def can_open_dashboard(request: HttpRequest) -> bool:
    return request.user.has_perm(VIEW_PERMISSION)


def _model_link(title: str, icon: str, model_label: str) -> dict:
    app_label, model_name = model_label.lower().split(".")
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(f"admin:{app_label}_{model_name}_changelist"),
        "permission": can_open_changelist(model_label),
    }


def sidebar(request: HttpRequest) -> list[dict]:
    """The navigation groups; unfold hides a link whose `permission` answers False, and a
    group left without links."""
    return [
        {
            "title": "Contacts",
            "items": [
                {
                    "title": "Sync dashboard",
                    "icon": "monitoring",
                    "link": reverse_lazy("sync_dashboard"),
                    "permission": can_open_dashboard,
                },
                _model_link("Contacts", "contacts", "contacts.Contact"),
                _model_link("Custom fields", "tune", "contacts.CustomFieldDefinition"),
                _model_link("Groups", "group_work", "contacts.Group"),
                _model_link("Mailing lists", "mail", "contacts.MailingList"),
            ],
        },
        {
            "title": "Sync",
            "items": [
                _model_link("Destinations", "cloud_upload", "sync.Destination"),
                _model_link("Contact sync states", "sync", "sync.ContactSyncState"),
                _model_link("Attempt log", "receipt_long", "sync.SyncAttempt"),
                _model_link("Runs", "play_circle", "sync.SyncRun"),
                _model_link("Erasures", "delete_forever", "sync.Erasure"),
                _model_link("Inbound events", "move_to_inbox", "sync.InboundEvent"),
            ],
        },
        {
            "title": "Administration",
            "items": [
                _model_link("Users", "person", "auth.User"),
                _model_link("Roles (groups)", "badge", "auth.Group"),
                _model_link(
                    "Queued tasks", "pending_actions", "django_tasks_database.DBTaskResult"
                ),
                _model_link("Login attempts", "lock", "axes.AccessAttempt"),
                _model_link("Login failures", "lock_clock", "axes.AccessFailureLog"),
                _model_link("Access log", "login", "axes.AccessLog"),
            ],
        },
    ]
