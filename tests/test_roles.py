"""Every view, list action and button answers each role as declared here, and a request that
is refused changes nothing and calls no platform.

Complete by construction: the whole URL resolver (the admin site and the root URLconf), every
action of every registered ModelAdmin and every declared button are walked, and each must be in
a table below. A new view, action or button that is missing from its table fails
`test_every_url_is_declared` (or its action/button counterpart) with a message saying what to
declare; once declared, the per-role tests ask every role for it and a missing permission check
shows as a role served where it should be refused.

Subjects: anonymous, a logged-in user who is not staff, a staff user in no group, the three
roles of sync/roles.py, and a superuser (so that every page is also seen served).
"""

import dataclasses
import re
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact, CustomFieldDefinition, ImportJob, MailingList
from contacts.models import Group as ContactGroup
from sync import tasks
from sync.models import (
    ContactSyncState,
    Destination,
    EraseReceipt,
    Erasure,
    FieldMapping,
    InboundEvent,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncStatus,
)
from tests.conftest import platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.django_db

ANONYMOUS = "anonymous"
NON_STAFF = "logged-in, not staff"
NO_GROUP = "staff, in no group"
MARKETING = "Marketing staff"
SYNC_ADMINS = "Sync admins"
MANAGERS = "Managers"
SUPERUSER = "superuser"
ROLES = (MARKETING, SYNC_ADMINS, MANAGERS)
STAFF = (NO_GROUP, *ROLES, SUPERUSER)
SUBJECTS = (ANONYMOUS, NON_STAFF, *STAFF)

NOBODY = frozenset()
EVERY_STAFF = frozenset(STAFF)
ONLY_SUPERUSER = frozenset({SUPERUSER})
CONFIGURE = frozenset({SYNC_ADMINS, SUPERUSER})  # destinations, catalogues, deletes, pushes
EDIT_CONTACTS = frozenset({MARKETING, SYNC_ADMINS, SUPERUSER})
READ_CONTACTS = frozenset({*ROLES, SUPERUSER})
READ_LOGS = frozenset({SYNC_ADMINS, MANAGERS, SUPERUSER})  # attempt log and runs

LOGIN_PAGE = "/admin/login/"


# ------------------------------------------------------------------------- the URL table


@dataclasses.dataclass(frozen=True)
class Rule:
    """Who is served at one URL.

    `get` and `post`: the staff subjects served (answered with `ok_get` / `ok_post`); every
    other staff subject is answered with one of `denied`; anonymous and non-staff users are
    sent to the login page. `post_only`: a GET answers 405 to every staff subject. `writes`:
    a served POST may change data or call a platform; every other request must do neither.
    `auth`: "staff" (the admin's login), "public" (Django's own login page and plain
    redirects: everyone gets `ok_get` / `ok_post`), or "signature" (an inbound endpoint
    that authenticates its caller by a signature, not by the session: a logged-in user,
    superuser included, must get exactly what anonymous gets; see `_signature_answer`)."""

    get: frozenset = NOBODY
    post: frozenset = NOBODY
    ok_get: tuple = (200,)
    ok_post: tuple = (200, 302)
    denied: tuple = (403,)
    post_only: bool = False
    writes: bool = False
    auth: str = "staff"
    outsiders: tuple | None = None  # anonymous and non-staff answers, if not the login page


def _model_rules(prefix, *, view, add, change, delete):
    """The five pages Django's ModelAdmin serves for a model (`prefix` is `app_model`)."""
    readers = view | change
    return {
        f"admin:{prefix}_changelist": Rule(get=readers, post=readers),
        f"admin:{prefix}_add": Rule(get=add, post=add),
        f"admin:{prefix}_change": Rule(get=readers, post=change),
        f"admin:{prefix}_history": Rule(get=readers, post=readers),
        f"admin:{prefix}_delete": Rule(get=delete, post=delete),
    }


def _catalogue_rules(prefix):
    return _model_rules(
        prefix, view=READ_CONTACTS, add=CONFIGURE, change=CONFIGURE, delete=CONFIGURE
    )


def _superuser_only(prefix, *, add=ONLY_SUPERUSER, change=ONLY_SUPERUSER, delete=ONLY_SUPERUSER):
    return _model_rules(prefix, view=ONLY_SUPERUSER, add=add, change=change, delete=delete)


def _axes_log_rules(prefix):
    rules = _superuser_only(prefix, add=NOBODY)
    # Every field is read-only: a superuser's save changes nothing but Django's LogEntry.
    rules[f"admin:{prefix}_change"] = dataclasses.replace(
        rules[f"admin:{prefix}_change"], writes=True
    )
    return rules


# An empty POST (plus the names of the page's submit buttons) is what each subject sends, so
# a served POST to a form only re-shows it with errors; `writes` marks the handlers that act
# on a bare POST (buttons, retry, cancel).
EXPECTED = {
    # --- the root URLconf: the dashboard and its two state-changing handlers
    "sync_dashboard": Rule(get=READ_CONTACTS, post=READ_CONTACTS),
    "sync_dashboard_runs": Rule(get=READ_CONTACTS, post=READ_CONTACTS),
    "sync_retry_failed": Rule(post=CONFIGURE, post_only=True, writes=True),
    "sync_cancel_run": Rule(post=CONFIGURE, post_only=True, writes=True),
    "sync_repush_drifted": Rule(post=CONFIGURE, post_only=True, writes=True),
    # A platform's events for one destination (sync.inbound): the platform's signature is the
    # only proof. A refused POST is counted on the destination (a write, the same for all).
    "sync_inbound": Rule(auth="signature", writes=True),
    # A browser's /favicon.ico -> the static SVG icon, for everyone.
    "favicon": Rule(auth="public", ok_get=(301,), ok_post=(301,)),
    # --- the admin site's own pages
    "admin:index": Rule(get=EVERY_STAFF, post=EVERY_STAFF),
    "admin:login": Rule(auth="public", ok_get=(200, 302), ok_post=(200,)),
    # Ends the session (django-axes stamps its access log); outsiders go to the index.
    "admin:logout": Rule(post=EVERY_STAFF, post_only=True, writes=True, outsiders=(302,)),
    "admin:password_change": Rule(get=EVERY_STAFF, post=EVERY_STAFF),
    "admin:password_change_done": Rule(get=EVERY_STAFF, denied=(405,)),
    "admin:jsi18n": Rule(get=EVERY_STAFF, denied=(405,)),
    # unfold's search of the apps and models the user may open (its own app list); POST too.
    "admin:search": Rule(get=EVERY_STAFF, post=EVERY_STAFF),
    # No admin has autocomplete_fields, so every query is refused (403; POST 405).
    "admin:autocomplete": Rule(denied=(403, 405)),
    # contenttypes' shortcut: no model here has get_absolute_url, so 404 for everyone.
    "admin:view_on_site": Rule(denied=(404,)),
    "admin:app_list[auth]": Rule(get=ONLY_SUPERUSER, post=ONLY_SUPERUSER, denied=(404,)),
    "admin:app_list[axes]": Rule(get=ONLY_SUPERUSER, post=ONLY_SUPERUSER, denied=(404,)),
    "admin:app_list[django_tasks_database]": Rule(
        get=ONLY_SUPERUSER, post=ONLY_SUPERUSER, denied=(404,)
    ),
    "admin:app_list[contacts]": Rule(get=READ_CONTACTS, post=READ_CONTACTS, denied=(404,)),
    "admin:app_list[sync]": Rule(get=READ_CONTACTS, post=READ_CONTACTS, denied=(404,)),
    # --- contacts: marketing staff edit, managers read, sync admins also delete
    **_model_rules(
        "contacts_contact",
        view=READ_CONTACTS,
        add=EDIT_CONTACTS,
        change=EDIT_CONTACTS,
        delete=CONFIGURE,
    ),
    # An old version is shown, never saved back (ContactAdmin.history_form_view).
    "admin:contacts_contact_simple_history": Rule(get=READ_CONTACTS),
    "admin:contacts_contact_sync_panel": Rule(get=READ_CONTACTS, post=READ_CONTACTS),
    # The sync panel's "Push now" and "Retry" for one destination: those who may push.
    "admin:contacts_contact_push_now": Rule(post=CONFIGURE, post_only=True, writes=True),
    "admin:contacts_contact_retry": Rule(post=CONFIGURE, post_only=True, writes=True),
    # Before a save: what each destination would refuse of the contact as typed (reads only).
    "admin:contacts_contact_sync_check": Rule(post=EDIT_CONTACTS, post_only=True),
    "admin:contacts_contact_import": Rule(get=EDIT_CONTACTS, post=EDIT_CONTACTS),
    "admin:contacts_contact_process_import": Rule(post=EDIT_CONTACTS, post_only=True),
    # A background import: its progress page and its skipped rows' CSV (GET and POST alike),
    # and the confirmation that queues its writing, for those who may import.
    "admin:contacts_contact_import_job": Rule(get=EDIT_CONTACTS, post=EDIT_CONTACTS),
    "admin:contacts_contact_import_job_skipped": Rule(get=EDIT_CONTACTS, post=EDIT_CONTACTS),
    "admin:contacts_contact_import_job_confirm": Rule(
        post=EDIT_CONTACTS, post_only=True, writes=True
    ),
    "admin:contacts_contact_export": Rule(get=READ_CONTACTS, post=READ_CONTACTS),
    **_catalogue_rules("contacts_customfielddefinition"),
    **_catalogue_rules("contacts_group"),
    **_catalogue_rules("contacts_mailinglist"),
    # --- destinations: sync admins configure them, the other roles read them
    **_model_rules(
        "sync_destination", view=READ_CONTACTS, add=CONFIGURE, change=CONFIGURE, delete=CONFIGURE
    ),
    "admin:sync_destination_simple_history": Rule(get=READ_CONTACTS),
    "admin:sync_destination_test_connection_button": Rule(
        post=CONFIGURE, post_only=True, writes=True
    ),
    "admin:sync_destination_refresh_options_button": Rule(
        post=CONFIGURE, post_only=True, writes=True
    ),
    "admin:sync_destination_register_inbound_button": Rule(
        post=CONFIGURE, post_only=True, writes=True
    ),
    # --- sync state and logs: written by the engine only (no add, no change)
    **_model_rules(
        "sync_contactsyncstate",
        view=READ_CONTACTS,
        add=NOBODY,
        change=NOBODY,
        delete=ONLY_SUPERUSER,
    ),
    **_model_rules(
        "sync_syncattempt", view=READ_LOGS, add=NOBODY, change=NOBODY, delete=ONLY_SUPERUSER
    ),
    **_model_rules(
        "sync_syncrun", view=READ_LOGS, add=NOBODY, change=NOBODY, delete=ONLY_SUPERUSER
    ),
    # --- erasures and their receipts: read-only proof, never deleted; sync admins retry
    **_model_rules("sync_erasure", view=READ_LOGS, add=NOBODY, change=NOBODY, delete=NOBODY),
    "admin:sync_erasure_retry_button": Rule(post=CONFIGURE, post_only=True, writes=True),
    **_model_rules(
        "sync_inboundevent", view=READ_LOGS, add=NOBODY, change=NOBODY, delete=ONLY_SUPERUSER
    ),
    # --- users, groups, login throttling and the task queue: superusers only
    **_superuser_only("auth_group"),
    **_superuser_only("auth_user"),
    "admin:auth_user_password_change": Rule(get=ONLY_SUPERUSER, post=ONLY_SUPERUSER),
    **_axes_log_rules("axes_accessattempt"),
    **_axes_log_rules("axes_accesslog"),
    **_axes_log_rules("axes_accessfailurelog"),
    # django-tasks-db's admin is read-only.
    **_superuser_only(
        "django_tasks_database_dbtaskresult", add=NOBODY, change=NOBODY, delete=NOBODY
    ),
}

# Patterns without a name, by route ("admin/<app>/<model>/" stands for every ModelAdmin).
UNNAMED = {
    "": Rule(auth="public", ok_get=(302,), ok_post=(302,)),  # "/" -> "/admin/"
    # Django's old object URL, redirected to the change page whatever the permissions.
    "admin/<app>/<model>/<path:object_id>/": Rule(
        get=EVERY_STAFF, post=EVERY_STAFF, ok_get=(302,), ok_post=(302,)
    ),
    "admin/(?P<url>.*)$": Rule(denied=(404,)),  # the admin's catch-all, for unknown pages
}


# ------------------------------------------------------------------------- the world


@dataclasses.dataclass
class World:
    """One object of every registered model, and the objects the root URLconf's views take."""

    objects: dict
    destination: Destination
    run: SyncRun
    contact: Contact
    user: User


@pytest.fixture
def world(sandbox_destination, django_user_model):
    """A paused destination with a mapping and fetched options, a contact with children
    and history, its failed sync state and attempt, a running run, a queued task, a user, a
    group and one row of each of django-axes' logs."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_tasks_db.models import DBTaskResult

    destination = sandbox_destination(platform_with(bulk=False))
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    contact.first_name = "Edited"
    contact.save()  # a history record to open
    definition = CustomFieldDefinition.objects.first()
    FieldMapping.objects.create(
        destination=destination, custom_field=definition, remote_field="loyaltyLevel"
    )
    RemoteOption.objects.create(
        destination=destination, kind="field", remote_id="loyaltyLevel", label="Loyalty"
    )
    Destination.objects.filter(pk=destination.pk).update(
        paused_at=timezone.now(), pause_error="HTTP 401: key revoked"
    )
    destination.refresh_from_db()
    run = SyncRun.objects.create(trigger="action", total=1, destination=destination)
    state = ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.FAILED, last_error="x", run=run
    )
    attempt = SyncAttempt.objects.create(
        destination=destination,
        contact=contact,
        run=run,
        trigger="action",
        outcome="failed",
        started_at=timezone.now(),
    )
    tasks.push_contacts.enqueue(
        destination_id=destination.pk, contact_ids=[contact.pk], trigger="action"
    )
    from contacts.models import Tombstone

    erasure = Erasure.objects.create(
        tombstone=Tombstone.objects.create(email_hash="e" * 64, external_id_hash="x" * 64),
        pending_external_id="erased-1",
        state=Erasure.State.ATTENTION,
    )
    EraseReceipt.objects.create(
        erasure=erasure,
        destination=destination,
        destination_name=destination.name,
        platform=destination.platform,
        outcome=EraseReceipt.Outcome.FAILED,
    )
    user = django_user_model.objects.create_user("someone", "someone@example.com", "pw-x-123456")
    access = {"user_agent": "test", "ip_address": "127.0.0.1", "username": "someone"}
    access |= {"http_accept": "*/*", "path_info": LOGIN_PAGE}
    objects = {
        Contact: contact,
        CustomFieldDefinition: definition,
        ContactGroup: ContactGroup.objects.first(),
        MailingList: MailingList.objects.first(),
        Destination: destination,
        ContactSyncState: state,
        SyncAttempt: attempt,
        SyncRun: run,
        Erasure: erasure,
        InboundEvent: InboundEvent.objects.create(
            destination=destination,
            platform=destination.platform,
            key="world-event",
            kind="unsubscribed",
            received_at=timezone.now(),
            body={},
            state="failed",
            error="x",
        ),
        Group: Group.objects.create(name="Spare group"),
        User: user,
        AccessAttempt: AccessAttempt.objects.create(
            **access, get_data="", post_data="", failures_since_start=1
        ),
        AccessLog: AccessLog.objects.create(**access),
        AccessFailureLog: AccessFailureLog.objects.create(**access),
        DBTaskResult: DBTaskResult.objects.get(),
        # a background import waiting for its confirmation (not an admin model: its pages
        # are the contact admin's)
        ImportJob: ImportJob.objects.create(
            file_name="people.csv",
            content="email,phone\nbad@example.com,12345\n",
            status=ImportJob.Status.PREVIEWED,
            total_rows=1,
            validated_rows=1,
            invalid_rows=1,
            preview_json='{"headers":["email","phone"],"page":[],"clearings":[]}',
            invalid_json='[{"row":1,"cells":["bad@example.com","12345"],"errors":{"phone":["bad"]}}]',
        ),
    }
    missing = [m._meta.label for m in admin.site._registry if objects.get(m) is None]
    assert not missing, f"add an object of {missing} to the world fixture"
    return World(objects, destination, run, contact, user)


@pytest.fixture
def login(client, django_user_model):
    """login(subject) -> a client logged in as a fresh user of that subject."""

    def log_in(subject):
        if subject == ANONYMOUS:
            return client, None
        name = re.sub(r"\W+", "-", subject.lower())
        if subject == SUPERUSER:
            user = django_user_model.objects.create_superuser(name, f"{name}@example.com", "pw-1")
        else:
            user = django_user_model.objects.create_user(
                name, f"{name}@example.com", "pw-1", is_staff=subject != NON_STAFF
            )
        if subject in ROLES:
            user.groups.add(Group.objects.get(name=subject))
        client.force_login(user)
        return client, user

    return log_in


# ------------------------------------------------------------------- walking the resolver


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str | None  # with its namespace, e.g. "admin:sync_destination_change"
    route: str  # the full route, e.g. "admin/sync/destination/<path:object_id>/change/"
    model: type | None  # the model when the URL is one of a ModelAdmin's
    arguments: int  # how many arguments the pattern takes
    keywords: tuple  # the names of those that are named


def walk_urls(resolver=None, prefix="", namespace="", model=None):
    """Every URL pattern of the root URLconf, includes followed."""
    resolver = resolver or get_resolver()
    model_prefixes = {
        f"admin/{m._meta.app_label}/{m._meta.model_name}/": m for m in admin.site._registry
    }
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from walk_urls(pattern, route, inner, model_prefixes.get(route, model))
        elif isinstance(pattern, URLPattern):
            name = pattern.name and ":".join(filter(None, [namespace, pattern.name]))
            regex = pattern.pattern.regex
            yield Endpoint(name, route, model, regex.groups, tuple(regex.groupindex))


def _generic_route(endpoint):
    if endpoint.model is None:
        return endpoint.route
    opts = endpoint.model._meta
    return endpoint.route.replace(
        f"admin/{opts.app_label}/{opts.model_name}/", "admin/<app>/<model>/"
    )


def _history_id(obj):
    return obj.history.order_by("-history_id").values_list("history_id", flat=True)[0]


# A URL argument, by name -> its value in the world.
ARGUMENT_VALUES = {
    "destination_id": lambda w: w.destination.pk,
    "run_id": lambda w: w.run.pk,
    "contact_id": lambda w: w.contact.pk,
    "job_id": lambda w: w.objects[ImportJob].pk,
}

# URL name -> world -> {table key: URL}, for URLs whose arguments are none of the above
# and not a ModelAdmin's object_id.
URL_ARGUMENTS = {
    "admin:view_on_site": lambda w: {
        "admin:view_on_site": reverse(
            "admin:view_on_site", args=[ContentType.objects.get_for_model(Contact).pk, w.contact.pk]
        )
    },
    "admin:auth_user_password_change": lambda w: {
        "admin:auth_user_password_change": reverse(
            "admin:auth_user_password_change", args=[w.user.pk]
        )
    },
    "sync_inbound": lambda w: {
        "sync_inbound": reverse("sync_inbound", kwargs={"token": w.destination.inbound_token})
    },
    "admin:app_list": lambda w: {
        f"admin:app_list[{label}]": reverse("admin:app_list", args=[label])
        for label in sorted({m._meta.app_label for m in admin.site._registry})
    },
}


def _urls(endpoint, world):
    """{table key: URL} for one endpoint, with the world's ids; fails for a URL whose
    arguments the test does not know how to fill."""
    if endpoint.name is None:
        return {_generic_route(endpoint): _unnamed_url(endpoint, world)}
    if endpoint.name in URL_ARGUMENTS:
        return URL_ARGUMENTS[endpoint.name](world)
    obj = world.objects.get(endpoint.model)
    if endpoint.arguments == 0:
        return {endpoint.name: reverse(endpoint.name)}
    if endpoint.arguments == len(endpoint.keywords) and set(endpoint.keywords) <= set(
        ARGUMENT_VALUES
    ):
        kwargs = {name: ARGUMENT_VALUES[name](world) for name in endpoint.keywords}
        return {endpoint.name: reverse(endpoint.name, kwargs=kwargs)}
    if obj is not None and endpoint.arguments == 1 and "<path:object_id>" in endpoint.route:
        return {endpoint.name: reverse(endpoint.name, args=[obj.pk])}
    if obj is not None and endpoint.name.endswith("_simple_history"):
        return {endpoint.name: reverse(endpoint.name, args=[obj.pk, _history_id(obj)])}
    pytest.fail(
        f"{endpoint.name} ({endpoint.route}) takes arguments: add them to ARGUMENT_VALUES, or "
        "the URL to URL_ARGUMENTS"
    )


def _unnamed_url(endpoint, world):
    route = _generic_route(endpoint)
    if route == "":
        return "/"
    if route == "admin/<app>/<model>/<path:object_id>/":
        opts = endpoint.model._meta
        return f"/admin/{opts.app_label}/{opts.model_name}/{world.objects[endpoint.model].pk}/"
    if route == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    pytest.fail(f"the unnamed pattern {route!r} is not in UNNAMED: name it, or declare its roles")


def _rule(key):
    rule = EXPECTED.get(key) or UNNAMED.get(key)
    if rule is None:
        pytest.fail(
            f"{key} is not in tests/test_roles.py EXPECTED: declare which roles may GET and "
            "POST it (and make its view check that permission)"
        )
    return rule


def every_url(world):
    """[(table key, URL, rule)] for every pattern the resolver serves."""
    found = []
    for endpoint in walk_urls():
        if endpoint.name is None and _generic_route(endpoint) not in UNNAMED:
            pytest.fail(
                f"the pattern {endpoint.route!r} has no name: name it and declare its roles in "
                "EXPECTED, or list it in UNNAMED"
            )
        if endpoint.name is not None and endpoint.name not in URL_ARGUMENTS:
            _rule(endpoint.name)  # declared before anything else is asked of it
        for key, url in _urls(endpoint, world).items():
            found.append((key, url, _rule(key)))
    return found


# ----------------------------------------------------------------- nothing changed, called


UNWATCHED = {"sessions.session", "contenttypes.contenttype", "auth.permission"}


def database_state() -> dict:
    """Every row of every model (m2m tables and historical records included) but the
    sessions and the static permission and content-type tables, by model. Plain SQL: this
    runs twice for each of a few hundred requests."""
    quote = connection.ops.quote_name
    state = {}
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            opts = model._meta
            if opts.label_lower not in UNWATCHED:
                cursor.execute(
                    f"SELECT * FROM {quote(opts.db_table)} ORDER BY {quote(opts.pk.column)}"
                )
                state[opts.label_lower] = cursor.fetchall()
    return state


@dataclasses.dataclass
class Observation:
    rows: dict
    platform_requests: int
    on_commit: int

    @classmethod
    def take(cls, sandbox):
        return cls(database_state(), sandbox_requests(sandbox), len(connection.run_on_commit))

    def changes_since(self, before) -> list[str]:
        changed = [f"rows of {m}" for m, rows in self.rows.items() if before.rows.get(m) != rows]
        if self.platform_requests != before.platform_requests:
            changed.append(f"{self.platform_requests - before.platform_requests} platform calls")
        if self.on_commit != before.on_commit:
            changed.append("work queued for after commit")
        return changed


# ----------------------------------------------------------------------- buttons on pages


class _SubmitNames(HTMLParser):
    """The names of a page's submit buttons: a handler that reads one of them from the POST
    (rather than having its own, checked URL) is sent it by every subject."""

    def __init__(self):
        super().__init__()
        self.names = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        submits = tag == "button" and attrs.get("type", "submit") == "submit"
        submits |= tag == "input" and attrs.get("type") in ("submit", "image")
        if submits and attrs.get("name"):
            self.names[attrs["name"]] = attrs.get("value") or ""


_SUBMIT_NAMES = {}  # table key -> names; pages are the same for every subject's test


def submit_names(urls) -> dict:
    """{table key: {button name: value}} from each page as a superuser sees it."""
    missing = [(key, url) for key, url, _ in urls if key not in _SUBMIT_NAMES]
    if missing:
        http = Client()
        http.force_login(User.objects.create_superuser("page-reader", "r@example.com", "pw-2"))
        for key, url in missing:
            response = http.get(url)
            _SUBMIT_NAMES[key] = {}
            if response.status_code == 200 and "html" in response.get("Content-Type", ""):
                parser = _SubmitNames()
                parser.feed(response.content.decode())
                _SUBMIT_NAMES[key] = parser.names
    return _SUBMIT_NAMES


# ------------------------------------------------------------------------- the answers


def _expected_answer(rule, subject, method):
    """The status codes allowed for this subject, or LOGIN_PAGE for a redirect to it."""
    if rule.auth == "public":
        return rule.ok_get if method == "GET" else rule.ok_post
    if subject in (ANONYMOUS, NON_STAFF):
        return rule.outsiders or LOGIN_PAGE
    if method == "GET" and rule.post_only:
        return (405,)
    served = rule.get if method == "GET" else rule.post
    if subject in served:
        return rule.ok_get if method == "GET" else rule.ok_post
    return rule.denied


def _served(rule, subject, method):
    return rule.auth in ("public", "signature") or (
        subject in STAFF
        and subject in (rule.get if method == "GET" else rule.post)
        and not (method == "GET" and rule.post_only)
    )


def _signature_answer(url, method, body):
    """What anonymous gets: a signed inbound endpoint must answer a logged-in user, even a
    superuser, the same (its session proves nothing). Marked Rule(auth="signature") in
    EXPECTED (the inbound endpoint); the walker asks this for its expected answer."""
    response = getattr(Client(), method.lower())(url, body)
    return (response.status_code,)


def _answer_problem(response, expected):
    if expected == LOGIN_PAGE:
        if response.status_code == 302 and response.url.startswith(LOGIN_PAGE):
            return None
        return f"{response.status_code} {response.get('Location', '')}, not the login page"
    if response.status_code not in expected:
        return f"{response.status_code}, not {' or '.join(map(str, expected))}"
    return None


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_url_answers_each_role_as_declared(subject, world, login, sandbox):
    urls = every_url(world)
    buttons = submit_names(urls)
    http, user = login(subject)
    problems = []
    before = Observation.take(sandbox)
    for key, url, rule in urls:
        # A GET, then a POST as each of the page's buttons would send it (an empty one if
        # it has none): a handler reading a button's name from the POST is pressed too.
        presses = [{name: value} for name, value in buttons[key].items()] or [{}]
        for method, body in [("GET", {}), *[("POST", press) for press in presses]]:
            if rule.auth == "signature":
                expected = _signature_answer(url, method, body)
                before = Observation.take(sandbox)  # anonymous's own effect is not ours
            else:
                expected = _expected_answer(rule, subject, method)
            response = getattr(http, method.lower())(url, body)
            problem = _answer_problem(response, expected)
            request = f"{method} {key} ({url}{' ' + ', '.join(body) if body else ''})"
            if problem:
                problems.append(f"{request}: {problem}")
            after = Observation.take(sandbox)
            changed = after.changes_since(before)
            if changed and not (rule.writes and _served(rule, subject, method)):
                problems.append(f"{request} changed {', '.join(changed)}")
            if user is not None and "_auth_user_id" not in http.session:
                http.force_login(user)  # after the logout page
                after = Observation.take(sandbox)
            before = after
    assert not problems, f"as {subject}:\n" + "\n".join(problems)


def test_every_url_is_declared(world):
    """The tables name exactly what the resolver serves: nothing missing, nothing stale."""
    keys = {key for key, _, _ in every_url(world)}
    stale = (set(EXPECTED) | set(UNNAMED)) - keys
    assert not stale, f"EXPECTED/UNNAMED name URLs that no longer exist: {sorted(stale)}"


# ------------------------------------------------------------------------- list actions

# Actions that may leave `allowed_permissions` unset, with the reason.
UNDECLARED_ACTIONS = {
    # django-import-export adds it only for users with its export permission (view).
    ("contacts.contact", "export_admin_action"): "read-only: writes a file",
    # django-axes' own action; the axes admin is open to superusers only (EXPECTED).
    ("axes.accessattempt", "cleanup_expired_attempts"): "third-party, superusers only",
}

# model -> action -> the subjects that get it from get_actions().
EXPECTED_ACTIONS = {
    "auth.group": {"delete_selected": ONLY_SUPERUSER},
    "auth.user": {"delete_selected": ONLY_SUPERUSER},
    "axes.accessattempt": {
        "delete_selected": ONLY_SUPERUSER,
        # Offered to every staff user, but the changelist it runs from is superusers' only.
        "cleanup_expired_attempts": EVERY_STAFF,
    },
    "axes.accesslog": {"delete_selected": ONLY_SUPERUSER},
    "axes.accessfailurelog": {"delete_selected": ONLY_SUPERUSER},
    "django_tasks_database.dbtaskresult": {},
    "contacts.contact": {
        "delete_selected": CONFIGURE,
        "push_selected": CONFIGURE,
        "retry_failed": CONFIGURE,
        "preview_payloads": READ_CONTACTS,  # permissions=["view"]: builds, sends nothing
        "preview_push": READ_CONTACTS,  # permissions=["view"]: the push's dry run, sends nothing
        "erase_selected": CONFIGURE,  # permissions=["erase"]: sync.erase_contacts
        "export_admin_action": READ_CONTACTS,
    },
    "contacts.customfielddefinition": {"delete_selected": CONFIGURE},
    "contacts.group": {"delete_selected": CONFIGURE},
    "contacts.mailinglist": {"delete_selected": CONFIGURE},
    "sync.destination": {
        "delete_selected": CONFIGURE,
        "test_connection": CONFIGURE,
        "refresh_options": CONFIGURE,
        "reconcile_sample": CONFIGURE,  # permissions=["push"]: queues read-backs
        "repush_drifted": CONFIGURE,
    },
    "sync.contactsyncstate": {"delete_selected": ONLY_SUPERUSER},
    "sync.syncattempt": {"delete_selected": ONLY_SUPERUSER},
    "sync.syncrun": {"delete_selected": ONLY_SUPERUSER, "cancel_runs": CONFIGURE},
    "sync.erasure": {},
    "sync.inboundevent": {"delete_selected": ONLY_SUPERUSER, "reprocess_events": CONFIGURE},
}


def test_every_action_declares_its_permissions(django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "pw-1")
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        declared = EXPECTED_ACTIONS.get(label)
        actions = model_admin.get_actions(_request(superuser))
        if declared is None or set(actions) != set(declared):
            problems.append(
                f"{label}: actions {sorted(actions)}; EXPECTED_ACTIONS declares "
                f"{sorted(declared or ())}: declare which roles get each action"
            )
        for name, (function, _, _) in actions.items():
            if not getattr(function, "allowed_permissions", None) and (
                (label, name) not in UNDECLARED_ACTIONS
            ):
                problems.append(f"{label}.{name} has no permissions=[…]: add them to @admin.action")
    stale = set(EXPECTED_ACTIONS) - {m._meta.label_lower for m in admin.site._registry}
    assert not stale, f"EXPECTED_ACTIONS names unregistered models: {sorted(stale)}"
    assert not problems, "\n".join(problems)


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.parametrize("subject", STAFF)
def test_each_role_gets_its_actions_and_cannot_run_the_others(subject, world, login, sandbox):
    http, user = login(subject)
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        declared = EXPECTED_ACTIONS.get(label, {})
        got = set(model_admin.get_actions(_request(user)))
        expected = {name for name, subjects in declared.items() if subject in subjects}
        if got != expected:
            problems.append(f"{label}: gets {sorted(got)}, declared {sorted(expected)}")
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for name in sorted(set(declared) - expected):
            before = Observation.take(sandbox)
            response = http.post(
                changelist,
                {
                    "action": name,
                    "_selected_action": [world.objects[model].pk],
                    "index": "0",
                    "post": "yes",  # a confirmed delete, were it allowed
                },
            )
            changed = Observation.take(sandbox).changes_since(before)
            if changed or response.status_code not in (200, 302, 403):
                problems.append(
                    f"{label}.{name}: {response.status_code}, changed {', '.join(changed)}"
                )
    assert not problems, f"as {subject}:\n" + "\n".join(problems)


# ------------------------------------------------------------------- buttons on a page


@dataclasses.dataclass(frozen=True)
class Button:
    subjects: frozenset  # the staff subjects whose POST is served
    calls_platform: bool  # a served press makes a request to the platform


EXPECTED_BUTTONS = {
    "admin:sync_destination_test_connection_button": Button(CONFIGURE, calls_platform=True),
    "admin:sync_destination_refresh_options_button": Button(CONFIGURE, calls_platform=True),
    # queues the platforms' erasure again (the task runs after the request)
    "admin:sync_erasure_retry_button": Button(CONFIGURE, calls_platform=False),
    # The world's destination registers in its platform's own settings: nothing is called.
    "admin:sync_destination_register_inbound_button": Button(CONFIGURE, calls_platform=False),
}


def declared_buttons():
    """[(URL name, ModelAdmin, ObjectAction)] of every admin with object actions."""
    found = []
    for model_admin in admin.site._registry.values():
        if hasattr(model_admin, "declared_object_actions"):
            for action in model_admin.declared_object_actions():
                name = f"admin:{model_admin.object_action_url_name(action)}"
                found.append((name, model_admin, action))
    return found


def test_every_button_is_declared_with_permissions(world):
    found = declared_buttons()
    for name, model_admin, action in found:
        assert action.permissions, f"{name} needs no permission"
        for permission in action.permissions:
            assert hasattr(model_admin, f"has_{permission}_permission"), (name, permission)
        reverse(name, args=[world.objects[model_admin.model].pk])  # its URL exists
    assert {name for name, _, _ in found} == set(EXPECTED_BUTTONS), (
        "EXPECTED_BUTTONS must name every declared button, with the roles that may press it"
    )


@pytest.mark.parametrize("subject", SUBJECTS)
def test_each_role_may_press_only_its_buttons(subject, world, login, sandbox):
    http, _ = login(subject)
    problems = []
    assert declared_buttons(), "no admin declares a button"
    for name, model_admin, _ in declared_buttons():
        button = EXPECTED_BUTTONS[name]
        url = reverse(name, args=[world.objects[model_admin.model].pk])
        allowed = subject in button.subjects
        for method, expected in [
            ("GET", (405,)),
            ("POST", (302,) if allowed else (403,)),
        ]:
            if subject in (ANONYMOUS, NON_STAFF):
                expected = LOGIN_PAGE
            before = Observation.take(sandbox)
            response = getattr(http, method.lower())(url)
            problem = _answer_problem(response, expected)
            if problem:
                problems.append(f"{method} {name}: {problem}")
            after = Observation.take(sandbox)
            if allowed and method == "POST":
                if button.calls_platform and after.platform_requests == before.platform_requests:
                    problems.append(f"POST {name} was served but called no platform")
            elif after.changes_since(before):
                problems.append(f"{method} {name} changed {', '.join(after.changes_since(before))}")
    assert not problems, f"as {subject}:\n" + "\n".join(problems)
