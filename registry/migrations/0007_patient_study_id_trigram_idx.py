"""A trigram index for the patient list's study-ID search, on PostgreSQL only.

The list searches with ``study_id__icontains``, which Django writes as
``UPPER("study_id"::text) LIKE UPPER('%...%')``: no B-tree index serves a pattern
with a leading wildcard, so each search read every patient of the user's sites
(0.3-0.7 s at 1,000,000 patients). A GIN index of the same expression with
``gin_trgm_ops`` serves it (1-50 ms; docs/performance.md). SQLite has no such index
and keeps scanning, which is fast at the sizes SQLite is meant for.

``pg_trgm`` ships with PostgreSQL and is a trusted extension (PostgreSQL 13+): the
database owner may create it. Where it cannot be created (not installed, or no
privilege), the migration says so and goes on without the index: the search works,
only slower; docs/performance.md gives the two statements to run later.
"""

import sys

from django.db import migrations, transaction
from django.db.utils import DatabaseError

INDEX = "patient_study_id_trgm_idx"
CREATE = (
    f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "registry_patient" '
    'USING gin ((UPPER("study_id"::text)) gin_trgm_ops)'
)


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):  # a savepoint: a refusal is not fatal
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(CREATE)
    except DatabaseError as error:
        print(
            f"\n  registry: study-ID search index not created ({error}).\n"
            "  The search works without it, but reads every patient: see "
            "docs/performance.md, Indexes.",
            file=sys.stderr,
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0006_workflow_code_constraint_names"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
