"""What a destination may name and reach.

A destination names the environment variables that hold its credentials and the URL they are
sent to. Both are typed by a sync admin, so both are checked against what the operator
allowed, never against what happens to exist:

- a credential variable must start with `SYNC_CREDENTIAL_PREFIX` or be listed in
  `SYNC_CREDENTIAL_NAMES`, and is never one of the variables Django, the database or the mail
  server read (`SECRET_KEY`, `DATABASE_URL`, `EMAIL_*`, ...);
- a URL must be https, carry no user name or password, and name a host its platform serves
  (the connector's `hosts`), a host the operator listed in `SYNC_EXTRA_HOSTS`, or, where
  `SYNC_ALLOW_LOOPBACK` is on, this machine's loopback (the sandbox);
- every connection must land on a public address, on loopback where allowed, or inside a
  network listed in `SYNC_ALLOWED_PRIVATE_NETWORKS` (checked at connect time by the
  connectors' session, so a name that resolves elsewhere later is caught too).

`destination_problems` runs the save-time checks for a form or a model's `clean`;
`credential_name_problem` and `address_problem` are used at push and connect time.
"""

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")
# Variables that configure the app itself: never a credential, whatever an allow list says.
RESERVED_NAMES = frozenset(
    {"SECRET_KEY", "DATABASE_URL", "DJANGO_ENV", "DJANGO_SETTINGS_MODULE", "ALLOWED_HOSTS"}
)
RESERVED_PREFIXES = ("DJANGO_", "DATABASE_", "EMAIL_", "PG", "POSTGRES", "AXES_", "SECURE_")
LOOPBACK_NAMES = frozenset({"localhost"})


def is_reserved_name(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def credential_name_problem(name: str) -> str:
    """Why `name` may not hold a credential ("" when it may). The answer depends only on the
    name and the allow list, never on whether such a variable exists."""
    rule = (
        f"Credential variables must be named {settings.SYNC_CREDENTIAL_PREFIX}… "
        "or be listed in SYNC_CREDENTIAL_NAMES by the operator."
    )
    if not ENV_NAME.fullmatch(name or "") or is_reserved_name(name):
        return f"“{name}” is not an allowed credential variable. {rule}"
    prefix = settings.SYNC_CREDENTIAL_PREFIX
    if (prefix and name.startswith(prefix) and name != prefix) or (
        name in settings.SYNC_CREDENTIAL_NAMES
    ):
        return ""
    return f"“{name}” is not an allowed credential variable. {rule}"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def _allowed_networks():
    return [ipaddress.ip_network(n, strict=False) for n in settings.SYNC_ALLOWED_PRIVATE_NETWORKS]


def address_problem(address: str) -> str:
    """Why a connection may not go to this IP address ("" when it may): private, link-local,
    loopback (unless SYNC_ALLOW_LOOPBACK), unspecified or reserved addresses are refused
    unless the operator lists their network in SYNC_ALLOWED_PRIVATE_NETWORKS."""
    ip = _ip(address)
    if ip is None:
        return f"{address} is not an IP address."
    if any(ip in network for network in _allowed_networks()):
        return ""
    if ip.is_loopback:
        return "" if settings.SYNC_ALLOW_LOOPBACK else f"{ip} is a loopback address."
    if not ip.is_global or ip.is_multicast:
        return f"{ip} is a private, link-local or reserved address."
    return ""


def is_loopback_host(host: str) -> bool:
    ip = _ip(host)
    return host in LOOPBACK_NAMES or (ip is not None and ip.is_loopback)


def url_problem(url: str, *, label: str, hosts: Iterable[str]) -> str:
    """Why a destination may not use this URL ("" when it may). `hosts` are the hosts the
    platform serves (the connector's `hosts`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "A destination URL must not contain a user name or password."
    if not host:
        return "A destination URL needs a host."
    loopback = is_loopback_host(host)
    if loopback:
        if not settings.SYNC_ALLOW_LOOPBACK:
            return "Loopback destinations (the sandbox) are not allowed here."
        if parts.scheme not in ("http", "https"):
            return "A destination URL must use https://."
        return ""
    if parts.scheme != "https":
        return "A destination URL must use https://."
    hosts = set(hosts)
    extra = {h.lower().rstrip(".") for h in settings.SYNC_EXTRA_HOSTS}
    if host not in hosts and host not in extra:
        served = ", ".join(sorted(hosts))
        return (
            f"{host} is not a {label} host ({served}). Another host needs the operator's "
            "SYNC_EXTRA_HOSTS."
        )
    if host in extra and not settings.SYNC_HTTPS_PROXY:
        return _resolved_problem(host, parts.port or 443)
    return ""


def _resolved_problem(host: str, port: int) -> str:
    """An operator-allowed host must not resolve to an internal address. A name that does not
    resolve now passes: the connect-time check still guards every connection."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return ""
    for info in infos:
        problem = address_problem(info[4][0])
        if problem:
            return f"{host} resolves to an address we never connect to: {problem}"
    return ""


def destination_problems(
    *, connector_class, base_url: str, credential_names: dict[str, str]
) -> dict[str, str]:
    """Every save-time check of a destination's URL and credential variables, as
    `{field name: message}` (empty when all pass). `credential_names` maps the Destination
    field that holds a variable's name to that name."""
    problems = {}
    if base_url:
        problem = url_problem(base_url, label=connector_class.label, hosts=connector_class.hosts)
        if problem:
            problems["base_url"] = problem
    for field_name, env_name in credential_names.items():
        if not env_name:
            problems[field_name] = "Name the environment variable that holds this credential."
            continue
        problem = credential_name_problem(env_name)
        if problem:
            problems[field_name] = problem
    return problems
