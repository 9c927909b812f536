"""Reads about contacts that other apps ask: whether a person was erased (the tombstone), and
a contact's consent ledger as its page shows it."""

from django.conf import settings
from django.db import connection
from django.utils.crypto import salted_hmac

from contacts.models import ConsentEntry, MailingList, Tombstone

# The key's salt: tombstones are HMACs keyed by SECRET_KEY (and this salt), so a leaked table
# cannot be reversed by hashing a list of guessed emails. A tombstone made under an older key
# is still recognised while that key is in SECRET_KEY_FALLBACKS; dropped from there, it is not.
TOMBSTONE_SALT = "contacts.tombstone"


def normalise_email(email: str) -> str:
    """Emails compare ignoring case and surrounding space, as the unique constraint does."""
    return (email or "").strip().lower()


def tombstone_hash(*, kind: str, value: str, secret: str | None = None) -> str:
    """The keyed hash of one identifier ("email" or "external_id"), "" for a blank one;
    keyed by SECRET_KEY unless `secret` is given."""
    value = normalise_email(value) if kind == "email" else (value or "").strip()
    if not value:
        return ""
    text = f"{kind}:{value}"
    return salted_hmac(TOMBSTONE_SALT, text, secret=secret, algorithm="sha256").hexdigest()


def tombstone_hash_forms(*, kind: str, value: str) -> set[str]:
    """The identifier's hash under SECRET_KEY and under each of SECRET_KEY_FALLBACKS."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return {h for secret in secrets if (h := tombstone_hash(kind=kind, value=value, secret=secret))}


def tombstone_hashes(*, email: str = "", external_id: str = "") -> tuple[str, str]:
    return tombstone_hash(kind="email", value=email), tombstone_hash(
        kind="external_id", value=external_id
    )


def contact_is_erased(*, email: str = "", external_id: str = "") -> bool:
    """True when the person with this email or this external ID was erased: an inbound event
    or an import that would re-create them must say so instead of creating them."""
    return erased_tombstone(email=email, external_id=external_id) is not None


def erased_tombstone(*, email: str = "", external_id: str = "") -> Tombstone | None:
    """The tombstone matching either identifier (under the current key or a fallback), or
    None."""
    email_hashes = tombstone_hash_forms(kind="email", value=email)
    external_id_hashes = tombstone_hash_forms(kind="external_id", value=external_id)
    found = Tombstone.objects.none()
    if email_hashes:
        found |= Tombstone.objects.filter(email_hash__in=email_hashes)
    if external_id_hashes:
        found |= Tombstone.objects.filter(external_id_hash__in=external_id_hashes)
    return found.first()


def tombstone_index() -> tuple[frozenset[str], frozenset[str]]:
    """Every tombstone's (email hashes, external ID hashes), read once for a whole import."""
    rows = list(Tombstone.objects.values_list("email_hash", "external_id_hash"))
    return (
        frozenset(e for e, _ in rows if e),
        frozenset(x for _, x in rows if x),
    )


CONSENT_TIMELINE_LIMIT = 100


def contact_consent_timeline(*, contact_id: int, limit: int = CONSENT_TIMELINE_LIMIT) -> dict:
    """The contact's consent ledger, newest first by when each change happened (two queries):
    {"entries": [{"entry", "channel_label", "previous", "opt_in"}...], "more": bool}. A
    channel "list:<id>" is named by its mailing list; `previous` is the status the change
    replaced ("" when unknown: entries written before it was recorded)."""
    rows = list(
        ConsentEntry.objects.filter(contact_id=contact_id).order_by("-occurred_at", "-id")[
            : limit + 1
        ]
    )
    list_ids = {
        int(row.channel.removeprefix("list:"))
        for row in rows
        if row.channel.startswith("list:") and row.channel.removeprefix("list:").isdigit()
    }
    names = dict(MailingList.objects.filter(pk__in=list_ids).values_list("pk", "name"))
    entries = []
    for row in rows[:limit]:
        if row.channel.startswith("list:"):
            list_id = row.channel.removeprefix("list:")
            label = f"list {names.get(int(list_id), list_id) if list_id.isdigit() else list_id}"
        else:
            label = {"email": "Email", "sms": "SMS", "push": "Push"}.get(row.channel, row.channel)
        entries.append(
            {
                "entry": row,
                "channel_label": label,
                "previous": row.previous_status.replace("_", " "),
                "status": row.status.replace("_", " "),
                "opt_in": row.is_opt_in,
            }
        )
    return {"entries": entries, "more": len(rows) > limit}


def distinct_values(model, field_name: str) -> list:
    """The distinct values of one indexed column, in order, by walking its index: one probe
    per value (a loose index scan) instead of `SELECT DISTINCT`, which reads every row. At a
    million contacts a country filter's values take a few milliseconds instead of 100 or
    more. Same values, same order as `.distinct().order_by(field_name)`; NULL is left out
    (the columns it serves are never NULL)."""
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    # Each step asks the index for the next value above the last one; both PostgreSQL and
    # SQLite answer `ORDER BY … LIMIT 1` on an indexed column from the index alone.
    sql = (
        f"WITH RECURSIVE present(value) AS ("
        f" SELECT (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1)"
        f" UNION ALL"
        f" SELECT (SELECT {column} FROM {table} WHERE {column} > present.value"
        f" ORDER BY {column} LIMIT 1) FROM present WHERE present.value IS NOT NULL"
        f") SELECT value FROM present WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [value for (value,) in cursor.fetchall()]
