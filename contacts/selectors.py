"""Reads about contacts that other apps ask: whether a person was erased (the tombstone)."""

from django.utils.crypto import salted_hmac

from contacts.models import Tombstone

# The key's salt: tombstones are HMACs keyed by SECRET_KEY (and this salt), so a leaked table
# cannot be reversed by hashing a list of guessed emails. Rotating SECRET_KEY without keeping
# the old key in SECRET_KEY_FALLBACKS makes old tombstones unrecognisable.
TOMBSTONE_SALT = "contacts.tombstone"


def normalise_email(email: str) -> str:
    """Emails compare ignoring case and surrounding space, as the unique constraint does."""
    return (email or "").strip().lower()


def tombstone_hash(*, kind: str, value: str) -> str:
    """The keyed hash of one identifier ("email" or "external_id"), "" for a blank one."""
    value = normalise_email(value) if kind == "email" else (value or "").strip()
    if not value:
        return ""
    return salted_hmac(TOMBSTONE_SALT, f"{kind}:{value}", algorithm="sha256").hexdigest()


def tombstone_hashes(*, email: str = "", external_id: str = "") -> tuple[str, str]:
    return tombstone_hash(kind="email", value=email), tombstone_hash(
        kind="external_id", value=external_id
    )


def contact_is_erased(*, email: str = "", external_id: str = "") -> bool:
    """True when the person with this email or this external ID was erased: an inbound event
    or an import that would re-create them must say so instead of creating them."""
    return erased_tombstone(email=email, external_id=external_id) is not None


def erased_tombstone(*, email: str = "", external_id: str = "") -> Tombstone | None:
    """The tombstone matching either identifier, or None."""
    email_hash, external_id_hash = tombstone_hashes(email=email, external_id=external_id)
    found = Tombstone.objects.none()
    if email_hash:
        found |= Tombstone.objects.filter(email_hash=email_hash)
    if external_id_hash:
        found |= Tombstone.objects.filter(external_id_hash=external_id_hash)
    return found.first()


def tombstone_index() -> tuple[frozenset[str], frozenset[str]]:
    """Every tombstone's (email hashes, external ID hashes), read once for a whole import."""
    rows = list(Tombstone.objects.values_list("email_hash", "external_id_hash"))
    return (
        frozenset(e for e, _ in rows if e),
        frozenset(x for _, x in rows if x),
    )
