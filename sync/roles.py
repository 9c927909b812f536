"""The three roles, as groups with permissions (created by a data migration, kept in code so
tests and the migration agree)."""

CONTACT_CHILDREN = [
    "channel",
    "customfieldvalue",
    "groupmembership",
    "mailinglistsubscription",
    "externalurl",
]
CATALOGUES = ["customfielddefinition", "group", "mailinglist"]
SYNC_LOGS = ["contactsyncstate", "syncattempt", "syncrun"]
DESTINATION_PARTS = [
    "destination",
    "fieldmapping",
    "nativefieldrule",
    "listmapping",
    "remoteoption",
]


def _perms(app, models, actions):
    return [(app, f"{action}_{model}") for model in models for action in actions]


ROLES = {
    "Marketing staff": [
        *_perms("contacts", ["contact", *CONTACT_CHILDREN], ["view", "add", "change"]),
        *_perms("contacts", CATALOGUES, ["view"]),
        *_perms("sync", ["contactsyncstate"], ["view"]),
        *_perms("sync", ["destination"], ["view"]),
    ],
    "Sync admins": [
        *_perms(
            "contacts",
            ["contact", *CONTACT_CHILDREN, *CATALOGUES],
            ["view", "add", "change", "delete"],
        ),
        *_perms("sync", DESTINATION_PARTS, ["view", "add", "change", "delete"]),
        *_perms("sync", SYNC_LOGS, ["view"]),
        ("sync", "push_contacts"),
    ],
    "Managers": [
        *_perms("contacts", ["contact", *CONTACT_CHILDREN, *CATALOGUES], ["view"]),
        *_perms("sync", SYNC_LOGS, ["view"]),
        *_perms("sync", ["destination"], ["view"]),
    ],
}


def sync_roles(apps) -> None:
    """Create or update the role groups (idempotent)."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        config.models_module = True  # create_permissions skips apps without it
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    # An earlier migration runs this with the roles of today: a permission of a model that
    # state does not have yet is left for the migration that adds the model (it runs this too).
    models = {(m._meta.app_label, m._meta.model_name) for m in apps.get_models()}
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = []
        for app, code in codes:
            model = code.split("_", 1)[1]
            if (app, model) not in models and any(a == app for a, _ in models):
                if not Permission.objects.filter(
                    content_type__app_label=app, codename=code
                ).exists():
                    continue
            perms.append(Permission.objects.get(content_type__app_label=app, codename=code))
        group.permissions.set(perms)
