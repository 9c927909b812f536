"""Credentials never stored or shown, whatever a platform answers.

A platform (or whatever answers at a destination's URL) may echo what we sent: the key, its
base64 or Basic form, a request signature. Everything a connector keeps (errors, response
excerpts, the exchange log) goes through a `Redactor` holding the connector's secrets in
every form they travel in; `scrub` does the same with every allowed credential variable of
the environment, for text that did not come through a connector (log records, messages).
"""

import base64
import logging
import os
from collections import deque
from urllib.parse import quote, quote_plus

from sync import policy

REDACTED = "[redacted]"
MIN_SECRET = 4  # shorter values would redact ordinary text; no platform issues such keys
MIN_HEADER_PART = 8  # parts of a signed header shorter than this are words, not secrets
RECENT_HEADER_VALUES = 32  # per-request values (signatures) kept for redaction


def secret_forms(secret: str) -> set[str]:
    """The forms a secret travels or is echoed in: as is, URL-quoted, base64 (standard and
    URL-safe, padded or not)."""
    if len(secret) < MIN_SECRET:
        return set()
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms |= {text, text.rstrip("=")}
    return forms


def header_forms(value: str) -> set[str]:
    """An authentication header's value and the secret-bearing parts of it: `Basic <b64>`,
    `Token token=<secret>`, `IWS <key>:<signature>` give the token, each side of `=` and `:`."""
    forms = {value}
    for token in value.split():
        forms.add(token)
        for separator in ("=", ":"):
            forms.update(token.split(separator))
    try:  # a Basic token decodes to user:secret (the user name is no secret)
        decoded = base64.b64decode(value.split()[-1], validate=True).decode()
        forms.add(decoded.partition(":")[2])
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    # A part as short as a scheme word ("Token", "token", "Bearer") is no secret: redacting it
    # would blank ordinary words in every message.
    return {f for f in forms if f == value or len(f) >= MIN_HEADER_PART}


class Redactor:
    """Replaces every known secret form in a text with `[redacted]`."""

    def __init__(self, secrets=()):
        self.static: set[str] = set()
        for secret in secrets:
            self.static |= secret_forms(secret)
        self.recent: deque[str] = deque(maxlen=RECENT_HEADER_VALUES)
        self._forms = self._longest_first()

    def add_header(self, value: str) -> None:
        """A signed header as sent: its parts are secret too (a signature proves the key)."""
        new = [f for f in header_forms(value) if f not in self.static and f not in self.recent]
        if new:
            self.recent.extend(new)
            self._forms = self._longest_first()

    def _longest_first(self) -> list[str]:
        return sorted({*self.static, *self.recent}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


def environment_credentials() -> list[str]:
    """The values of every allowed credential variable set in this process."""
    return [
        value
        for name, value in os.environ.items()
        if value and not policy.credential_name_problem(name)
    ]


def scrub(text: str) -> str:
    """`text` with every allowed credential of the environment (in every form) redacted."""
    if not text:
        return text
    return Redactor(environment_credentials())(text)


class ScrubSecretsFilter(logging.Filter):
    """A logging filter: credentials never reach a log line, in its message or traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
