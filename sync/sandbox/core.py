"""The sandbox's shared machinery: requests and responses, the fault switches, rate limits and
the request log. Each platform's emulator (one module each) subclasses `PlatformEmulator`.

Faults, per platform (or "*" for all), switched on and off over HTTP while the server runs:
- `latency_ms`: added before every answer (the answer, and the rate limit's count, are
  decided when the request arrives);
- `error_rate` with `error_status` (default 500): that fraction of calls fail; with
  `error_path`, only calls whose path and query string contain that text (one call of a
  platform failing while the others answer);
- `outage`: "refuse" (the connection is closed without an answer) or "503";
- `storm_seconds` with `retry_after`: every call answers 429 with `Retry-After` until then;
- `malformed`: "html", "empty" or "noid": a 2xx answer's body is replaced by that;
- `revoked`: the credentials are refused (401 in the platform's own shape);
- `redirect`: every call answers 302 with a Location on an outside host (`REDIRECT_HOST`), as
  a moved or hijacked endpoint would; a client must not follow it with the credentials;
- `reshape_key` with `reshape_to` and `reshape_path`: in the 2xx JSON answers of calls whose
  path and query string contain `reshape_path` ("" = every call), the key `reshape_key` is
  renamed to `reshape_to` (dropped when that is ""), at every depth: a vendor changing the
  shape of a documented answer, for the vendor-change probe's tests;
- `echo_credentials`: every call answers 400 with a message quoting the request's
  authorization headers (as a gateway's debug page does), to prove they are redacted.

Notifications (what the platform sends back, shared/inbound.md): `POST /_sandbox/webhook`
stands for the person registering our URL in the platform's own settings (where the platform
has no API for it), and `POST /_sandbox/notify` makes the platform do something to a contact
(unsubscribe, bounce, delete...) as it would, then deliver its real notification, signed its
real way, to the registered URL; the answer lists each delivery's HTTP status. Options any
emulator reads: `event_time` (Unix seconds: when the change happened), `sent_at` (Unix
seconds: when the delivery was signed, for a late retry) and `tamper` (a wrong signature).

An emulator may declare switches of its own in `switch_defaults` (to bring back a field the
vendor has since withdrawn, for instance): they are set through the same control call and
cleared by a reset.
"""

import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

REDIRECT_HOST = "https://moved.example.net"  # outside the platforms' hosts and loopback


@dataclass
class Notification:
    """One HTTP delivery a platform makes to a webhook URL."""

    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


def option_time(data: dict, key: str) -> int:
    """A notify option in Unix seconds (`event_time`, `sent_at`), now when absent."""
    value = data.get(key)
    return int(value) if value is not None else int(time.time())


def deliver(notification: Notification, timeout: float = 30.0) -> dict:
    """Send one notification (from outside any emulator lock); its status and answer."""
    import requests  # noqa: PLC0415 (only the control side delivers)

    try:
        response = requests.request(
            notification.method,
            notification.url,
            headers=notification.headers,
            data=notification.body or None,
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as err:
        return {"url": notification.url, "status": None, "error": str(err)}
    return {"url": notification.url, "status": response.status_code, "body": response.text[:500]}


class CloseConnection(Exception):
    """Raised to drop the connection without an answer (the 'refuse' outage)."""


@dataclass
class SandboxRequest:
    method: str
    path: str  # below the platform prefix, starting with "/", without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    raw_path: str = ""  # the full path with the query string, as the client signed it

    @classmethod
    def parse_query(cls, query_string: str) -> dict[str, list[str]]:
        return parse_qs(query_string, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The JSON body; raises BadRequest when absent or not JSON."""
        if not self.body:
            raise BadRequest("the request has no body")
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise BadRequest(f"the body is not JSON: {err}") from err


class BadRequest(Exception):
    """An emulator raises it for a body it refuses; the emulator turns it into its 400."""


@dataclass
class SandboxResponse:
    status: int
    body: Any = None  # dict/list -> JSON; str -> text; None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        return str(self.body).encode(), self.headers.pop(
            "Content-Type", "text/plain; charset=utf-8"
        )


@dataclass
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 500
    error_path: str = ""  # "" = every call
    outage: str = ""  # "" | "refuse" | "503"
    storm_until: float = 0.0
    retry_after: int = 1
    malformed: str = ""  # "" | "html" | "empty" | "noid"
    revoked: bool = False
    redirect: bool = False
    echo_credentials: bool = False
    reshape_key: str = ""
    reshape_to: str = ""
    reshape_path: str = ""

    def update(self, changes: dict) -> None:
        for key, value in changes.items():
            if key == "storm_seconds":
                self.storm_until = time.time() + float(value) if value else 0.0
            elif key in self.__dataclass_fields__ and key != "storm_until":
                kind = type(getattr(self, key))
                setattr(self, key, kind(value))
            else:
                raise BadRequest(f"unknown fault {key!r}")

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["storm_seconds_left"] = max(0.0, self.storm_until - time.time())
        return data


class SlidingWindowLimiter:
    """At most `limit` calls in any one-second window; None means no limit."""

    def __init__(self, limit: float | None):
        self.limit = limit
        self.calls: deque[float] = deque()
        self.lock = threading.Lock()

    def check(self) -> tuple[bool, int]:
        """(allowed, remaining) for a call made now."""
        if not self.limit:
            return True, 0
        now = time.monotonic()
        with self.lock:
            while self.calls and self.calls[0] <= now - 1.0:
                self.calls.popleft()
            if len(self.calls) >= self.limit:
                return False, 0
            self.calls.append(now)
            return True, int(self.limit - len(self.calls))


class Traffic:
    """What reached one platform, for a benchmark or a test to read: requests, the most that
    arrived within any one second (a sliding window, stricter than calendar seconds), the 429
    answers, and the most requests being answered at once (latency included)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.rate_limited = self.max_per_second = 0
        self.in_flight = self.max_in_flight = 0
        self.window: deque[float] = deque()  # arrivals of the last second

    def arrived(self) -> None:
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            self.window.append(now)
            self.max_per_second = max(self.max_per_second, len(self.window))

    def left(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def answered(self, status: int) -> None:
        if status == 429:
            with self.lock:
                self.rate_limited += 1

    def report(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "max_per_second": self.max_per_second,
                "rate_limited": self.rate_limited,
                "max_in_flight": self.max_in_flight,
            }


class PlatformEmulator:
    """One platform's contract. Subclasses implement `authenticate`, `route` and the error
    shapes; the store is theirs, guarded by `self.lock`."""

    slug: str = ""
    default_rate_limit: float | None = None
    # The sandbox's one fake account: its credentials, by the name the platform's connector
    # reads them under, and the destination settings that account needs. Public values: the
    # sandbox destinations and `.env.example` use them (sync/sandbox/__init__.py).
    account_credentials: ClassVar[dict[str, str]] = {}
    account_settings: ClassVar[dict[str, Any]] = {}
    # The platform's own switches, name -> default (a behaviour of the platform that a test
    # may turn back, such as a call the vendor has since withdrawn).
    switch_defaults: ClassVar[dict[str, Any]] = {}
    # The attributes `reset` sets that hold what the platform keeps (its contacts, lists,
    # id counters, a registered webhook): saved to the store file and restored at start, so
    # a restarted sandbox never hands out a remote ID twice (sync/sandbox/store_file.py).
    # Derived indexes are left out and built again in `after_restore`.
    stored_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self):
        self.lock = threading.RLock()
        self.limiter = SlidingWindowLimiter(self.default_rate_limit)
        self.switches = dict(self.switch_defaults)
        self.reset()

    def set_switches(self, changes: dict) -> None:
        """Set declared switches; raises BadRequest for a value of the wrong type."""
        for key, value in changes.items():
            if type(value) is not type(self.switch_defaults[key]):
                raise BadRequest(
                    f"{self.slug} switch {key!r} takes a "
                    f"{type(self.switch_defaults[key]).__name__}, not {value!r}"
                )
            self.switches[key] = value

    def reset(self) -> None:
        """Empty the store (subclasses call super and set up their sample fields and lists)."""

    def stored_state(self) -> dict[str, Any]:
        """The `stored_attributes`, by name (live objects: encode them under `self.lock`)."""
        return {name: getattr(self, name) for name in self.stored_attributes}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take back what `stored_state` gave (from a store file); names this emulator does
        not store are ignored, and one missing from the file keeps its `reset` value."""
        for name in self.stored_attributes:
            if name in state:
                setattr(self, name, state[name])
        self.after_restore()

    def after_restore(self) -> None:
        """Build again what is derived from the stored attributes (an index, say)."""

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        """None when the credentials are good, else the platform's refusal."""
        raise NotImplementedError

    def route(self, request: SandboxRequest) -> SandboxResponse:
        raise NotImplementedError

    def error(self, status: int, message: str) -> SandboxResponse:
        """An error in the platform's own shape."""
        return SandboxResponse(status, {"error": message})

    def revoked_response(self) -> SandboxResponse:
        return self.error(401, "Unauthorized: the credentials were revoked")

    def rate_limited_response(self, retry_after: int | None) -> SandboxResponse:
        response = self.error(429, "Too many requests")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def no_id_body(self) -> Any:
        """A 2xx body without the id (the 'noid' fault)."""
        return {"success": True}

    def decorate(self, response: SandboxResponse, remaining: int) -> None:
        """Add the platform's own headers to every answer (rate-limit counters, say)."""

    def snapshot(self) -> Any:
        """What the platform holds now, as JSON."""
        raise NotImplementedError

    # The field of the sandbox account that takes free text (a mapping target for tests).
    account_text_field: ClassVar[str] = ""

    def register_webhook(self, data: dict) -> dict:
        """A person registers a webhook URL in the platform's settings (platforms with no API
        for it). Called under `self.lock`; returns what the platform shows."""
        raise BadRequest(f"{self.slug} registers webhooks through its API")

    def notify(self, data: dict, base_url: str) -> list[Notification]:
        """Do `data["action"]` to a contact as the platform would and return the
        notifications it sends for it. Called under `self.lock`; `base_url` is where the
        sandbox is served (for links such as SNS's SubscribeURL)."""
        raise BadRequest(f"{self.slug} sends no notifications")

    def contact_view(self, external_id: str) -> dict | None:
        """The live contact the platform holds under our external ID, in platform-neutral
        words: {"first_name", "last_name", "email", "text_field"} (the value of
        `account_text_field`, None when unset); None when it holds none (or only a deleted
        one). Called under `self.lock`."""
        raise NotImplementedError

    def consent_view(self, external_id: str) -> dict | None:
        """Whether the platform would send the live contact held under our external ID bulk
        email, in neutral words: {"email_subscribed": bool}; None when it holds none. Called
        under `self.lock`."""
        raise NotImplementedError

    def edit_contact(self, external_id: str, changes: dict) -> bool:
        """Change a stored contact as a person would in the platform's own screens (what a
        read-back must then see as drift): `changes` holds neutral names of `contact_view`
        ("first_name", "last_name", "email", "text_field") and/or "raw", an object of the
        platform's own keys set as the store keeps them. False when no live contact holds
        this external ID. Called under `self.lock`; raises BadRequest for an unknown name."""
        raise NotImplementedError

    def remove_contact(self, external_id: str) -> bool:
        """Remove the contact from the store, as a person deleting it on the platform would
        (iVvy has no delete call, so this is the only way there). False when none is held.
        Called under `self.lock`."""
        raise NotImplementedError


class Sandbox:
    """All emulators, their faults and the request log, independent of the HTTP server."""

    def __init__(self, emulators: list[PlatformEmulator], *, seed: int | None = None):
        self.emulators = {e.slug: e for e in emulators}
        self.faults = {slug: Faults() for slug in self.emulators}
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.log: deque = deque(maxlen=20000)
        # each platform's last notifications, for `redeliver`
        self.delivered: dict[str, list[Notification]] = {}
        self.changes = 0  # grows with every call that may change a store (store_file.py)
        self.traffic = {slug: Traffic() for slug in self.emulators}

    def reset(self) -> None:
        for slug, emulator in self.emulators.items():
            with emulator.lock:
                emulator.reset()
            emulator.limiter = SlidingWindowLimiter(emulator.default_rate_limit)
            emulator.switches = dict(emulator.switch_defaults)
            self.faults[slug] = Faults()
        with self.lock:
            self.counts.clear()
            self.log.clear()
            self.delivered.clear()
            self.changes += 1
        self.traffic_reset()

    def traffic_reset(self) -> None:
        """Start counting traffic afresh (the stores, faults and limits stay)."""
        for slug in self.emulators:
            self.traffic[slug] = Traffic()

    def traffic_report(self, platform: str | None = None) -> dict:
        """Per platform: requests, the most that arrived in any one second, 429s answered,
        the most answered at once (GET /_sandbox/traffic)."""
        slugs = [platform] if platform else list(self.emulators)
        for slug in slugs:
            if slug not in self.traffic:
                raise BadRequest(f"unknown platform {slug!r}")
        return {slug: self.traffic[slug].report() for slug in slugs}

    def handle(self, slug: str, request: SandboxRequest) -> SandboxResponse:
        emulator = self.emulators[slug]
        faults = self.faults[slug]
        traffic = self.traffic[slug]
        traffic.arrived()
        try:
            response = self._answer(emulator, faults, request)
        except CloseConnection:
            self._count(slug, request, "refused")
            raise
        finally:
            traffic.left()
        traffic.answered(response.status)
        self._count(slug, request, response.status)
        return response

    def _count(self, slug, request, status):
        with self.lock:
            self.changes += 1
            self.counts[(slug, status)] += 1
            self.log.append(
                {
                    "t": time.time(),
                    "platform": slug,
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                }
            )

    def _answer(self, emulator, faults, request):
        """The answer, decided when the request arrives (its rate limit counted then, as a
        platform counts what reaches it) and given `latency_ms` later."""
        try:
            return self._decide(emulator, faults, request)
        finally:
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000)

    def _decide(self, emulator, faults, request):
        if faults.outage == "refuse":
            raise CloseConnection()
        if faults.outage == "503":
            return emulator.error(503, "Service unavailable")
        if faults.redirect:
            return SandboxResponse(302, None, {"Location": REDIRECT_HOST + request.raw_path})
        if faults.echo_credentials:
            echoed = "; ".join(
                f"{name}: {value}"
                for name, value in sorted(request.headers.items())
                if "authorization" in name
            )
            return emulator.error(400, f"Bad request. Received {echoed}")
        refused = emulator.authenticate(request)
        if refused is not None:
            return refused
        if faults.revoked:
            return emulator.revoked_response()
        if faults.storm_until > time.time():
            return emulator.rate_limited_response(faults.retry_after)
        allowed, remaining = emulator.limiter.check()
        if not allowed:
            response = emulator.rate_limited_response(1)
            emulator.decorate(response, 0)
            return response
        if (
            faults.error_rate
            and faults.error_path in request.raw_path
            and self.random.random() < faults.error_rate
        ):
            return emulator.error(faults.error_status, "Injected failure")
        try:
            response = emulator.route(request)
        except BadRequest as err:
            response = emulator.error(400, str(err))
        emulator.decorate(response, remaining)
        if 200 <= response.status < 300 and faults.malformed:
            response = self._malformed(emulator, faults.malformed, response)
        if (
            200 <= response.status < 300
            and faults.reshape_key
            and faults.reshape_path in request.raw_path
        ):
            response.body = _reshaped(response.body, faults.reshape_key, faults.reshape_to)
        return response

    @staticmethod
    def _malformed(emulator, kind, response):
        if kind == "html":
            return SandboxResponse(
                response.status,
                "<html><body>Gateway says hi</body></html>",
                {"Content-Type": "text/html"},
            )
        if kind == "empty":
            return SandboxResponse(response.status, None)
        return SandboxResponse(response.status, emulator.no_id_body())

    # -- control, served under /_sandbox/

    def set_faults(self, platform: str, changes: dict) -> dict:
        """Set faults, and the switches the targeted emulators declare (with "*", a switch
        goes to the platforms that have it). Raises BadRequest for an unknown name."""
        targets = list(self.faults) if platform == "*" else [platform]
        for slug in targets:
            if slug not in self.faults:
                raise BadRequest(f"unknown platform {slug!r}")
        declared = {key for slug in targets for key in self.emulators[slug].switch_defaults}
        for slug in targets:
            emulator = self.emulators[slug]
            switches = {k: v for k, v in changes.items() if k in emulator.switch_defaults}
            with emulator.lock:
                emulator.set_switches(switches)
            self.faults[slug].update({k: v for k, v in changes.items() if k not in declared})
        return {
            slug: {**self.faults[slug].as_dict(), **self.emulators[slug].switches}
            for slug in targets
        }

    def set_rate_limit(self, platform: str, limit: float | None) -> None:
        self.emulators[platform].limiter = SlidingWindowLimiter(limit)

    def stats(self) -> dict:
        with self.lock:
            by_platform: dict[str, dict[str, int]] = {}
            for (slug, status), count in self.counts.items():
                by_platform.setdefault(slug, {})[str(status)] = count
            return {"requests": by_platform}

    def request_log(self, platform: str | None = None) -> list[dict]:
        with self.lock:
            return [entry for entry in self.log if platform in (None, entry["platform"])]

    def register_webhook(self, platform: str, data: dict) -> dict:
        emulator = self._emulator(platform)
        self._changed()
        with emulator.lock:
            return emulator.register_webhook(data)

    def notify(self, platform: str, data: dict, base_url: str) -> list[dict]:
        """The platform acts, then its notifications are delivered one by one, in order
        (outside the emulator's lock: the receiver may call the platform back)."""
        emulator = self._emulator(platform)
        self._changed()
        with emulator.lock:
            notifications = emulator.notify(data, base_url)
        with self.lock:
            self.delivered[platform] = notifications
        return [deliver(n) for n in notifications]

    def redeliver(self, platform: str) -> list[dict]:
        """Send the platform's last notifications again, byte for byte: what a platform that
        retries does when our answer was lost on the way (a timeout). A receiver must take
        each delivery once (shared/inbound.md part A: a replay is answered 200, ignored)."""
        self._emulator(platform)
        with self.lock:
            notifications = list(self.delivered.get(platform, []))
        if not notifications:
            raise BadRequest(f"{platform} has sent no notification yet")
        return [deliver(n) for n in notifications]

    def _changed(self) -> None:
        with self.lock:
            self.changes += 1

    def _emulator(self, platform: str) -> PlatformEmulator:
        if platform not in self.emulators:
            raise BadRequest(f"unknown platform {platform!r}")
        return self.emulators[platform]

    def contact_view(self, platform: str, external_id: str) -> dict | None:
        emulator = self.emulators[platform]
        with emulator.lock:
            return emulator.contact_view(external_id)

    def consent_view(self, platform: str, external_id: str) -> dict | None:
        emulator = self.emulators[platform]
        with emulator.lock:
            return emulator.consent_view(external_id)

    def edit_contact(self, platform: str, external_id: str, changes: dict) -> dict | None:
        """Apply a platform-side change; the contact's view afterwards, None when not held."""
        emulator = self.emulators[platform]
        if not isinstance(changes, dict):
            raise BadRequest("the changes are a JSON object")
        unknown = set(changes) - {"first_name", "last_name", "email", "text_field", "raw"}
        if unknown or not isinstance(changes.get("raw", {}), dict):
            raise BadRequest(f"unknown change(s) {sorted(unknown)}; raw takes an object")
        self._changed()
        with emulator.lock:
            if not emulator.edit_contact(external_id, changes):
                return None
            return emulator.contact_view(external_id)

    def remove_contact(self, platform: str, external_id: str) -> bool:
        emulator = self.emulators[platform]
        self._changed()
        with emulator.lock:
            return emulator.remove_contact(external_id)

    def store(self, platform: str | None = None) -> dict:
        slugs = [platform] if platform else list(self.emulators)
        result = {}
        for slug in slugs:
            emulator = self.emulators[slug]
            with emulator.lock:
                result[slug] = emulator.snapshot()
        return result


def _reshaped(value: Any, key: str, to: str) -> Any:
    """`value` with `key` renamed to `to` (dropped when `to` is "") in every object in it."""
    if isinstance(value, list):
        return [_reshaped(item, key, to) for item in value]
    if isinstance(value, dict):
        reshaped = {}
        for name, inner in value.items():
            if name == key:
                if to:
                    reshaped[to] = _reshaped(inner, key, to)
                continue
            reshaped[name] = _reshaped(inner, key, to)
        return reshaped
    return value
