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
SYNC_LOGS = [
    "contactsyncstate",
    "syncattempt",
    "syncrun",
    "erasure",
    "erasereceipt",
    "inboundevent",
]
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
        ("sync", "erase_contacts"),
    ],
    "Managers": [
        *_perms("contacts", ["contact", *CONTACT_CHILDREN, *CATALOGUES], ["view"]),
        *_perms("sync", SYNC_LOGS, ["view"]),
        *_perms("sync", ["destination"], ["view"]),
    ],
}


def sync_roles(apps, *, missing_ok: bool = False) -> None:
    """Create or update the role groups (idempotent).

    `missing_ok`: leave out permissions of models a later migration creates (an early
    migration runs this with today's ROLES; the migration adding a model runs it again)."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        config.models_module = True  # create_permissions skips apps without it
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        # An earlier migration runs this before later models exist: their permissions are
        # added by the migration that re-runs it after them.
        perms = [
            Permission.objects.filter(content_type__app_label=app, codename=code).first()
            for app, code in codes
        ]
        missing = [code for (_, code), perm in zip(codes, perms, strict=True) if perm is None]
        if missing and not missing_ok:
            raise LookupError(f"{name}: no such permissions: {', '.join(missing)}")
        perms = [perm for perm in perms if perm is not None]
        group.permissions.set(perms)
