"""Build the POST body the contact admin page sends, inline formsets included."""

INLINES = {
    "channels": ["type", "value"],
    "custom_values": ["definition", "value"],
    "memberships": ["group"],
    "subscriptions": ["mailing_list", "subscribed"],
    "external_urls": ["ref", "url", "label"],
}

BASE = {
    "first_name": "John",
    "last_name": "Smith",
    "email": "john.smith@example.com",
    "phone": "",
    "external_id": "",
    "language": "en",
    "time_zone": "America/New_York",
    "address_line": "123 Main Street",
    "city": "New York",
    "region": "NY",
    "postal_code": "10001",
    "country": "US",
    "birth_date": "1990-01-01",
    "gender": "male",
    "user_group": "",
    "tags": "newsletter, customer",
    "email_status": "subscribed",
    "sms_status": "no_marketing",
    "consent_date_0": "",
    "consent_date_1": "",
    "consent_ip": "",
    "last_latitude": "",
    "last_longitude": "",
}


def contact_post(contact=None, **rows_and_fields):
    """Fields override BASE; `channels=[{...}]` and the other inline names give inline rows.

    With `contact`, the existing inline rows are listed as initial forms (kept unchanged unless
    the caller passes new rows for that inline).
    """
    data = dict(BASE)
    for prefix, fields in INLINES.items():
        rows = rows_and_fields.pop(prefix, [])
        initial = []
        if contact is not None:
            initial = list(getattr(contact, prefix).all())
        data[f"{prefix}-TOTAL_FORMS"] = str(len(initial) + len(rows))
        data[f"{prefix}-INITIAL_FORMS"] = str(len(initial))
        data[f"{prefix}-MIN_NUM_FORMS"] = "0"
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
        for i, obj in enumerate(initial):
            data[f"{prefix}-{i}-id"] = str(obj.pk)
            data[f"{prefix}-{i}-contact"] = str(contact.pk)
            for field in fields:
                value = (
                    getattr(obj, f"{field}_id", None)
                    if field in ("definition", "group", "mailing_list")
                    else getattr(obj, field)
                )
                if value is True:
                    value = "on"
                if value is not False:
                    data[f"{prefix}-{i}-{field}"] = str(value)
        for j, row in enumerate(rows, start=len(initial)):
            for field, value in row.items():
                if value is True:
                    value = "on"
                if value is not False:
                    data[f"{prefix}-{j}-{field}"] = str(value)
    for key, value in rows_and_fields.items():
        if value is True:
            data[key] = "on"
        elif value is False:
            data.pop(key, None)
        else:
            data[key] = value
    return data
