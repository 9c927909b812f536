"""Set-based seeding for the scale benchmarks on PostgreSQL: contacts, sync states and
attempt-log rows made by `INSERT … SELECT generate_series`, so a million contacts or ten
million attempts take minutes, not the hours the ORM's per-row objects would."""

CONTACT_SQL = """
    INSERT INTO contacts_contact (first_name, last_name, email, phone, external_id, language,
        time_zone, address_line, city, region, country, postal_code, gender, email_status,
        sms_status, privacy_consent, gdpr_marketing_consent, terms_accepted, tags, user_group,
        content_version, created_at, updated_at)
    SELECT 'First' || g, 'Last' || g, 'bench' || g || '@example.com', '', 'bench-' || g,
        (ARRAY['en', 'de', 'fr', 'es'])[1 + mod(g, 4)], '', '', '', '',
        (ARRAY['GB', 'DE', 'FR', 'ES', 'AU'])[1 + mod(g, 5)], '', '',
        CASE WHEN mod(g, 10) = 0 THEN 'unsubscribed' ELSE 'subscribed' END, 'no_marketing',
        true, true, true, '[]'::jsonb, '', 1,
        now() - mod(g, 100000) * interval '1 minute', now() - mod(g, 100000) * interval '1 minute'
    FROM generate_series(%s, %s) AS g
"""

STATE_SQL = """
    INSERT INTO sync_contactsyncstate (contact_id, destination_id, remote_id, status,
        skip_reason, last_error, attempts, payload_hash, accepted_email_status,
        confirmation_ref, claimed_by, updated_at)
    SELECT c.id, d.id, 'R' || c.id,
        CASE WHEN mod(c.id, 20) = 0 THEN 'failed' WHEN mod(c.id, 20) = 1 THEN 'pending'
             ELSE 'synced' END,
        '', CASE WHEN mod(c.id, 20) = 0 THEN 'HTTP 400: error ' || mod(c.id, 7) ELSE '' END,
        0, '', '', '', '', now()
    FROM contacts_contact c CROSS JOIN sync_destination d
    WHERE c.id > %s
"""

ATTEMPT_SQL = """
    INSERT INTO sync_syncattempt (destination_id, contact_id, external_id, trigger,
        started_at, duration_ms, http_status, request_body, response_excerpt, outcome, error)
    SELECT (SELECT min(id) FROM sync_destination) + mod(g, 4), NULL, 'ct-' || g, 'action',
        now() - (%s + mod(g::bigint * 7919, %s)) * interval '1 second', 12, 200, '{}', '{}',
        CASE WHEN mod(g, 25) = 0 THEN 'failed' ELSE 'updated' END,
        CASE WHEN mod(g, 25) = 0 THEN 'HTTP 400: error ' || mod(g, 7) ELSE '' END
    FROM generate_series(%s, %s) AS g
"""

STEP = 1_000_000  # rows per statement: one statement's transaction stays a few seconds


def seed_contacts(cursor, count: int, *, states: bool = True, children: bool = False) -> None:
    """`count` more contacts, and with `states` a sync state on every destination for each (1
    in 20 failed with one of 7 messages, 1 in 20 pending). With `children`, the inline rows a
    push sends too, as contacts.demo makes them (`seed_children`); the list and dashboard read
    none."""
    cursor.execute("SELECT coalesce(max(id), 0) FROM contacts_contact")
    start = cursor.fetchone()[0]
    for low in range(start + 1, start + count + 1, STEP):
        cursor.execute(CONTACT_SQL, [low, min(low + STEP - 1, start + count)])
    if children:
        seed_children(cursor, after_id=start)
    if states:
        cursor.execute("SELECT coalesce(max(contact_id), 0) FROM sync_contactsyncstate")
        cursor.execute(STATE_SQL, [cursor.fetchone()[0]])


# The catalogues of contacts.demo (its groups, mailing lists and custom fields), then, per
# contact after `after_id`, the children contacts.demo gives: a web-push channel for 3 in 10,
# both custom field values, one or two groups, one mailing list (1 in 10 unsubscribed from it)
# and an external URL for 1 in 5.
CATALOGUE_SQL = [
    """INSERT INTO contacts_group (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING""",
    """INSERT INTO contacts_mailinglist (name) SELECT unnest(%s::text[])
        ON CONFLICT DO NOTHING""",
    """INSERT INTO contacts_customfielddefinition (name, type)
        SELECT unnest(%s::text[]), unnest(%s::text[]) ON CONFLICT DO NOTHING""",
]
CHILDREN_SQL = [
    """INSERT INTO contacts_channel (contact_id, type, value)
        SELECT id, 'webpush', 'subscription-' || external_id FROM contacts_contact
        WHERE id > %(after)s AND mod(id, 10) < 3""",
    """INSERT INTO contacts_customfieldvalue (contact_id, definition_id, value)
        SELECT c.id, d.id, CASE d.type WHEN 'number' THEN (10 + mod(c.id * 7, 4990))::text
            ELSE (ARRAY['Bronze', 'Silver', 'Gold', 'Platinum'])[1 + mod(c.id, 4)] END
        FROM contacts_contact c CROSS JOIN contacts_customfielddefinition d
        WHERE c.id > %(after)s AND d.name = ANY(%(fields)s)""",
    """INSERT INTO contacts_groupmembership (contact_id, group_id)
        SELECT c.id, g.id FROM contacts_contact c
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM contacts_group
              WHERE name = ANY(%(groups)s)) g
          ON g.n = mod(c.id, %(group_count)s)
          OR (mod(c.id, 2) = 0 AND g.n = mod(c.id + 1, %(group_count)s))
        WHERE c.id > %(after)s""",
    """INSERT INTO contacts_mailinglistsubscription (contact_id, mailing_list_id, subscribed)
        SELECT c.id, l.id, mod(c.id, 10) <> 7 FROM contacts_contact c
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM contacts_mailinglist
              WHERE name = ANY(%(lists)s)) l ON l.n = mod(c.id, %(list_count)s)
        WHERE c.id > %(after)s""",
    """INSERT INTO contacts_externalurl (contact_id, ref, url, label)
        SELECT id, 'crm', 'https://crm.example.com/contacts/' || external_id, 'CRM'
        FROM contacts_contact WHERE id > %(after)s AND mod(id, 5) = 0""",
]


def seed_children(cursor, *, after_id: int) -> None:
    """The demo's catalogues, and the children of every contact whose id is above `after_id`."""
    from contacts import demo

    names, kinds = zip(*demo.CUSTOM_FIELDS, strict=True)
    cursor.execute(CATALOGUE_SQL[0], [demo.GROUPS])
    cursor.execute(CATALOGUE_SQL[1], [demo.MAILING_LISTS])
    cursor.execute(CATALOGUE_SQL[2], [list(names), [str(k) for k in kinds]])
    params = {
        "after": after_id,
        "fields": list(names),
        "groups": demo.GROUPS,
        "group_count": len(demo.GROUPS),
        "lists": demo.MAILING_LISTS,
        "list_count": len(demo.MAILING_LISTS),
    }
    for sql in CHILDREN_SQL:
        cursor.execute(sql, params)


def seed_attempts(cursor, count: int, *, days: int = 30, older_than_days: int = 0) -> None:
    """`count` more attempt-log rows on the four destinations, spread over `days` days ending
    `older_than_days` ago (1 in 25 failed), in statements of a million rows."""
    cursor.execute("SELECT coalesce(max(id), 0) FROM sync_syncattempt")
    start = cursor.fetchone()[0]
    for low in range(start + 1, start + count + 1, STEP):
        cursor.execute(
            ATTEMPT_SQL,
            [
                older_than_days * 24 * 3600,
                days * 24 * 3600,
                low,
                min(low + STEP - 1, start + count),
            ],
        )


def vacuum(connection) -> None:
    """VACUUM ANALYZE (outside a transaction): fresh statistics and a visibility map, as the
    autovacuum of a long-running database keeps them, so counts can use index-only scans."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# Inbound events on the four destinations (in turns of 20 rows, so each gets every kind),
# received over `days` days: 1 in 20 an unsubscribe, a hard bounce, a complaint or a delete
# each, and 1 in 20 the unsubscribe a platform sends with the hard bounce three rows before
# (Loops' fan-out: same person, same moment); the rest recorded only (deliveries, opens,
# clicks).
INBOUND_SQL = """
    INSERT INTO sync_inboundevent (destination_id, platform, key, kind, raw_type, channel,
        remote_list, remote_id, external_id, email, status, detail, occurred_at, received_at,
        stale, body, data, state, error, contact_id, processed_at)
    SELECT d.id, d.platform, 'bench-' || g, k.kind, k.kind, 'email', '', 'R' || b.base,
        'ct-' || b.base, 'p' || b.base || '@example.com', '', '', t.at, t.at, false,
        '{}'::jsonb, '{}'::jsonb,
        CASE WHEN k.kind = 'recorded' THEN 'ignored' ELSE 'applied' END, '', NULL, t.at
    FROM generate_series(%s, %s) AS g
    CROSS JOIN LATERAL (SELECT CASE WHEN mod(g, 20) = 4 THEN g - 3 ELSE g END AS base) b
    CROSS JOIN LATERAL (SELECT now() - %s * interval '1 second'
        + (b.base - %s) * %s * interval '1 second' AS at) t
    CROSS JOIN LATERAL (SELECT CASE mod(g, 20) WHEN 0 THEN 'unsubscribed'
        WHEN 1 THEN 'hard_bounce' WHEN 2 THEN 'complaint' WHEN 3 THEN 'deleted'
        WHEN 4 THEN 'unsubscribed' ELSE 'recorded' END AS kind) k
    JOIN (SELECT id, platform, row_number() OVER (ORDER BY id) - 1 AS n FROM sync_destination)
        d ON d.n = mod(b.base / 20, 4)
"""


def seed_inbound_events(cursor, count: int, *, days: int = 30) -> None:
    """`count` more inbound events on the first four destinations, received over `days`
    days ending now in the order of their ids (as a live table is written), in statements of
    a million rows."""
    cursor.execute("SELECT coalesce(max(id), 0) FROM sync_inboundevent")
    start = cursor.fetchone()[0]
    span = days * 24 * 3600
    for low in range(start + 1, start + count + 1, STEP):
        high = min(low + STEP - 1, start + count)
        cursor.execute(INBOUND_SQL, [low, high, span, start, span / count])
