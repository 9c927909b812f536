"""`IdIn`: a filter on a list of integer ids that costs one parameter, not one per id.

Django's `__in` prepares, checks and compiles each value of its list; for the engine's chunks
of 1,000 contact ids, six or seven such filters per chunk cost more than the queries
themselves. These ids are integers (our own primary keys), so the list goes to PostgreSQL as
one array (`= ANY(%s)`) and to SQLite as integer literals, each checked with `int()`.

    Channel.objects.filter(IdIn(F("contact_id"), ids))
"""

from django.db.models import Lookup


class IdIn(Lookup):
    lookup_name = "id_in"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [int(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*params, self.rhs]
        # int() above: only digits (and a sign) reach the statement
        return f"{lhs} IN ({', '.join(str(value) for value in self.rhs)})", params
