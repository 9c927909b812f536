"""What a destination may name and reach (sync/policy.py): credential variables from the
operator's allow list only, hosts bound to their platform, no internal address, and every
change to where credentials go recorded."""

import socket

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import connectors, services
from sync.connectors.base import UntrustedAddressError
from sync.connectors.records import ContactRecord, MappingRecord, RemoteState
from sync.models import Destination, SyncStatus
from sync.policy import credential_name_problem
from sync.sandbox import sandbox_destination_fields
from tests.conftest import PLATFORMS, platform_with
from tests.sync.conftest import destination_form_data
from tests.sync.listener import Listener

pytestmark = pytest.mark.django_db

# The policy is the same for every platform: these tests take one from the registry, with a
# host it serves and a host only another platform serves.
PLATFORM = platform_with(bulk=False)
CONNECTOR = connectors.get_class(PLATFORM)
HOST = sorted(CONNECTOR.hosts)[0]
OTHER_HOST = next(
    host
    for cls in connectors.get_class_list()
    for host in sorted(cls.hosts)
    if host not in CONNECTOR.hosts
)
KEY_FIELD = next(iter(CONNECTOR.credentials.values())).field


def _destination(base_url: str, **fields) -> Destination:
    """An unsaved destination on PLATFORM with valid credential names and settings."""
    spec = sandbox_destination_fields(PLATFORM, "http://127.0.0.1:1")
    return Destination(**{**spec, "name": "x", "base_url": base_url, **fields})


# What a hostile sync admin named, in the security review: the app's own secrets, another
# platform's variable under its old name, and ordinary process variables.
STOLEN_NAMES = [
    "SECRET_KEY",
    "DATABASE_URL",
    "EMAIL_HOST_PASSWORD",
    "DJANGO_SETTINGS_MODULE",
    "YESPO_API_KEY",
    "PATH",
    "HOME",
    "sync_credential_lowercase",
]


def _add_form(**changes):
    return destination_form_data(_destination("", name="Exfiltration"), **changes)


def _field_errors(response, field):
    form = response.context["adminform"].form
    return form.errors.get(field, [])


# ------------------------------------------------------------------ credential variables


@pytest.mark.parametrize("name", STOLEN_NAMES)
def test_the_form_refuses_a_credential_variable_outside_the_allow_list(admin_client_logged, name):
    response = admin_client_logged.post(
        reverse("admin:sync_destination_add"), _add_form(**{KEY_FIELD: name})
    )
    assert response.status_code == 200
    (error,) = _field_errors(response, KEY_FIELD)
    assert "not an allowed credential variable" in error
    assert not Destination.objects.exists()


def test_the_refusal_says_nothing_of_whether_the_variable_exists(monkeypatch):
    monkeypatch.setenv("SOME_EXISTING_VARIABLE", "value")
    monkeypatch.delenv("SOME_MISSING_VARIABLE", raising=False)
    existing = credential_name_problem("SOME_EXISTING_VARIABLE")
    missing = credential_name_problem("SOME_MISSING_VARIABLE")
    assert existing and existing.replace("EXISTING", "X") == missing.replace("MISSING", "X")


def test_the_operator_may_list_names_but_never_the_apps_own(settings):
    settings.SYNC_CREDENTIAL_NAMES = ["LEGACY_LOOPS_KEY", "SECRET_KEY", "EMAIL_HOST_PASSWORD"]
    assert credential_name_problem("LEGACY_LOOPS_KEY") == ""
    assert credential_name_problem("SYNC_CREDENTIAL_ANYTHING") == ""
    assert credential_name_problem("SECRET_KEY")
    assert credential_name_problem("EMAIL_HOST_PASSWORD")
    from sync.checks import outbound_policy_check

    ids = [problem.id for problem in outbound_policy_check()]
    assert ids.count("sync.E001") == 2


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_stored_row_naming_the_apps_secret_sends_nothing(sandbox_destination, settings, platform):
    """A row saved before the policy (or written around the form) is refused at push and
    test time: the listener never sees SECRET_KEY, and the error is destination-wide."""
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    with Listener(status=200) as listener:
        destination = sandbox_destination(
            platform, base_url=f"{listener.url}/", key_env="SECRET_KEY"
        )
        ok, message = services.destination_test_connection(destination=destination)
        state = services.contact_push(
            contact_id=contact.pk,
            destination=destination,
            context=services.PushContext(trigger="action", force=True),
        )
    assert not ok and "not an allowed credential variable" in message
    assert listener.requests == []
    assert settings.SECRET_KEY not in listener.headers_received()
    destination.refresh_from_db()
    assert destination.is_paused and "SECRET_KEY" in destination.pause_error
    assert state.status == SyncStatus.WAITING


# ------------------------------------------------------------------------------- hosts


HOSTILE_URLS = [
    "https://169.254.169.254/latest/",
    "https://10.0.0.5/",
    "https://192.168.1.1/",
    "https://[::ffff:127.0.0.1]/",
    "https://0.0.0.0/",
    "https://[fd00::1]/",
    "https://metadata.google.internal/",
    f"https://user:pass@{HOST}/",
    "https://listener.attacker.example/",
    f"http://{HOST}/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_production_refuses_urls_that_leave_the_platform(settings, url):
    settings.SYNC_ALLOW_LOOPBACK = False
    destination = _destination(url)
    with pytest.raises(ValidationError) as refused:
        destination.full_clean()
    assert "base_url" in refused.value.message_dict


def test_userinfo_is_refused_even_where_loopback_is_allowed(settings):
    settings.SYNC_ALLOW_LOOPBACK = True
    destination = _destination(f"https://{HOST}@127.0.0.1/")
    with pytest.raises(ValidationError, match="user name or password"):
        destination.full_clean()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platforms_own_hosts_and_regions_are_accepted(settings, platform):
    settings.SYNC_ALLOW_LOOPBACK = False
    cls = Destination(platform=platform).connector_class
    assert cls.hosts, "a connector declares the hosts its platform serves"
    for url in {cls.default_base_url, *cls.regions.values()}:
        destination = Destination(
            name=f"{platform} live",
            platform=platform,
            base_url=url,
            settings={s.name: "acct" for s in cls.destination_settings if s.required},
            **{
                field: f"SYNC_CREDENTIAL_{platform.upper()}_{field.upper()}"
                for field in ("key_env", "secret_env")
            },
        )
        destination.full_clean()


def test_a_destination_cannot_point_at_another_platforms_host(settings):
    settings.SYNC_ALLOW_LOOPBACK = False
    destination = _destination(f"https://{OTHER_HOST}/")
    with pytest.raises(ValidationError, match=f"not a {CONNECTOR.label} host"):
        destination.full_clean()


def test_operator_extra_hosts_are_checked_for_internal_addresses(settings):
    settings.SYNC_ALLOW_LOOPBACK = False
    settings.SYNC_EXTRA_HOSTS = ["relay.example.com", "10.0.0.5"]
    ok = _destination("https://relay.example.com/api/")
    ok.full_clean()  # an extra host that is not internal (or not resolvable here) is allowed
    internal = _destination("https://10.0.0.5/")
    with pytest.raises(ValidationError, match="private"):
        internal.full_clean()
    settings.SYNC_ALLOWED_PRIVATE_NETWORKS = ["10.0.0.0/8"]
    internal.full_clean()  # a private deployment lists its network


def _connector(base_url):
    credentials = {name: f"sk-{name}-secret-1234" for name in CONNECTOR.credentials}
    spec = sandbox_destination_fields(PLATFORM, base_url)
    return CONNECTOR(
        base_url=base_url,
        credentials=credentials,
        mapping=MappingRecord(),
        options=spec["settings"],
    )


def test_a_connection_that_lands_on_loopback_is_refused_at_connect_time(settings):
    """Whatever the stored URL said, the address the socket reached decides: nothing is sent
    to an internal address (a DNS answer can change after the URL was checked)."""
    settings.SYNC_ALLOW_LOOPBACK = False
    record = ContactRecord(id=1, external_id="e-1", email="a@example.com")
    with Listener(status=200) as listener:
        with pytest.raises(UntrustedAddressError, match="loopback"):
            _connector(f"{listener.url}/").push(record, RemoteState())
        assert listener.requests == []
        settings.SYNC_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.0/8"]
        _connector(f"{listener.url}/").push(record, RemoteState())
    assert len(listener.requests) == 1


def test_a_name_resolving_to_loopback_pauses_the_destination(sandbox_destination, settings):
    """An operator-allowed name that resolves to an internal address at push time (this
    machine's own name resolves to loopback here) is refused before a byte is sent: by the
    check of the resolved name when the connector is built, and, should DNS answer otherwise
    later, by the check of the connected socket (the test above)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip("this machine's name does not resolve")
    if not address.startswith("127."):
        pytest.skip("this machine's name does not resolve to loopback")
    seed_demo_contacts(1)
    with Listener(status=200) as listener:
        port = listener.url.rsplit(":", 1)[1]
        destination = sandbox_destination(PLATFORM, base_url=f"https://{name}:{port}/")
        settings.SYNC_ALLOW_LOOPBACK = False
        settings.SYNC_EXTRA_HOSTS = [name]
        state = services.contact_push(
            contact_id=Contact.objects.get().pk,
            destination=destination,
            context=services.PushContext(trigger="action", force=True),
        )
    assert listener.requests == []
    destination.refresh_from_db()
    assert state.status == SyncStatus.WAITING
    assert destination.is_paused and "127.0.0.1 is a loopback address" in destination.pause_error


def test_loopback_in_production_is_warned_about(settings):
    from sync.checks import outbound_policy_check

    settings.IS_PRODUCTION, settings.SYNC_ALLOW_LOOPBACK = True, True
    assert [p.id for p in outbound_policy_check()] == ["sync.W001"]
    settings.SYNC_ALLOW_LOOPBACK = False
    assert outbound_policy_check() == []


# ------------------------------------------------------------------------------ history


def test_changes_to_where_credentials_go_are_recorded(admin_client_logged, sandbox_destination):
    destination = sandbox_destination(PLATFORM)
    old_variable = getattr(destination, KEY_FIELD)
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    form = destination_form_data(
        destination, base_url=f"https://{HOST}/api/", **{KEY_FIELD: "SYNC_CREDENTIAL_LIVE_KEY"}
    )
    response = admin_client_logged.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    newest, older = destination.history.all()[:2]
    assert newest.history_user.username == "root"
    assert (getattr(older, KEY_FIELD), getattr(newest, KEY_FIELD)) == (
        old_variable,
        "SYNC_CREDENTIAL_LIVE_KEY",
    )
    assert newest.base_url == f"https://{HOST}/api/"
    page = admin_client_logged.get(url).content.decode()
    history_url = reverse("admin:sync_destination_history", args=[destination.pk])
    assert history_url in page
    history = admin_client_logged.get(history_url).content.decode()
    assert "SYNC_CREDENTIAL_LIVE_KEY" in history and "root" in history
