"""The study-ID search's trigram index (migration 0007), on PostgreSQL.

The index serves the list's ``study_id__icontains`` only if its expression is the
one Django writes; these tests ask PostgreSQL's planner. SQLite has no such index:
the migration does nothing there, and the search itself is tested on both databases
(tests/test_views.py).
"""

import importlib

import pytest
from django.db import connection, transaction

from registry.models import Patient

from .factories import PatientFactory

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="pg_trgm and GIN indexes are PostgreSQL's"
)
migration = importlib.import_module("registry.migrations.0007_patient_study_id_trigram_idx")


@postgresql_only
@pytest.mark.django_db
def test_the_study_id_search_can_read_the_trigram_index(site_a):
    for n in range(20):
        PatientFactory(site=site_a, study_id=f"CT-{n:04d}")
    search = Patient.objects.filter(study_id__icontains="0013").order_by().values("pk")
    with transaction.atomic(), connection.cursor() as cursor:
        # A few rows: the planner would read them all, by a scan or along a B-tree
        # index with a filter. Forbidding both leaves the indexes that match the pattern.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = search.explain()
    assert migration.INDEX in plan, plan
    assert list(search.values_list("pk", flat=True)) == [Patient.objects.get(study_id="CT-0013").pk]


class _Editor:
    def __init__(self):
        self.connection = connection


@postgresql_only
@pytest.mark.django_db
def test_a_refused_search_index_is_reported_and_the_migration_goes_on(monkeypatch, capsys):
    monkeypatch.setattr(migration, "CREATE", "CREATE INDEX refused ON no_such_table (x)")
    migration.create_index(None, _Editor())
    assert "study-ID search index not created" in capsys.readouterr().err
    with connection.cursor() as cursor:  # the savepoint kept the transaction usable
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
