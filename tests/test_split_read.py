"""The study tables' read on several PostgreSQL connections, one exported snapshot.

``analytics.datasets._read_split``: outside a transaction, each connection reads a
range of patient ids in its own thread; together they must give exactly the rows of
one read, as of one moment, even while nurses save.
"""

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from analytics import datasets, tables
from analytics.datasets import ANALYSIS, Filters
from registry.models import FollowUp

from .analytics_cohort import build_cohort


def _sorted(frame):
    return frame.sort_values(list(frame.columns), ignore_index=True)


def _read(connections_: int, settings):
    settings.ANALYTICS_READ_CONNECTIONS = connections_
    return datasets._read_frame(datasets.patients(None, Filters(), excluded=None), ANALYSIS)


# -- the ranges (no database) ----------------------------------------------------------------


def test_ranges_cover_every_id_once_in_equal_parts(settings):
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 0
    assert datasets._id_ranges(1, 10, 2) == [(1, 6), (6, 11)]
    assert datasets._id_ranges(5, 7, 3) == [(5, 6), (6, 7), (7, 8)]
    ranges = datasets._id_ranges(17, 1_000_016, 3)
    assert ranges[0][0] == 17 and ranges[-1][1] == 1_000_017
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert {hi - lo for lo, hi in ranges} <= {333_333, 333_334}


def test_a_small_or_empty_registry_is_read_in_one_range(settings):
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 50_000
    assert datasets._id_ranges(1, 49_999, 2) == [(1, 50_000)]
    assert len(datasets._id_ranges(1, 50_000, 2)) == 2
    assert datasets._id_ranges(None, None, 2) == [(0, 1)]
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 0
    assert datasets._id_ranges(4, 4, 2) == [(4, 5)]  # fewer ids than connections


# -- the read (PostgreSQL, committed data: the other connections must see it) ------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="exported snapshots are PostgreSQL's"
)


@pytest.fixture
def committed_cohort(site_a, site_b, settings):
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 0
    return build_cohort(site_a, site_b)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_three_connections_read_exactly_the_rows_of_one(committed_cohort, settings):
    one = _read(1, settings)
    with CaptureQueriesContext(connection) as captured:
        three = _read(3, settings)
    assert len(one) == len(three) == 10
    assert _sorted(one).equals(_sorted(three))
    statements = [q["sql"] for q in captured.captured_queries]
    assert any("pg_export_snapshot()" in sql for sql in statements)
    assert sum("COPY (" in sql for sql in statements) == 1  # the other two: other connections


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_filtered_read_on_two_connections_keeps_its_parameters(committed_cohort, settings):
    def read(connections_):
        settings.ANALYTICS_READ_CONNECTIONS = connections_
        queryset = datasets.patients(None, Filters(site="A", circulation="anterior"))
        return datasets._read_frame(queryset, ANALYSIS)

    one, two = read(1), read(2)
    assert len(one) == 6  # site A's anterior patients (A-03, A-05 are posterior)
    assert _sorted(one).equals(_sorted(two))


def test_the_range_reaches_every_join_of_the_read():
    template, _params = datasets._fetch_sql(
        datasets.patients(None, Filters(), excluded=None), ANALYSIS, ranged=True
    )
    joins = template.count(" JOIN ")
    assert joins == 7  # the five sections, the exclusion, the screening entry
    # each join's ON clause and the patients themselves
    assert template.count('."patient_id" >= __range_from__') == joins
    assert template.count("r_range_pk >= __range_from__") == 1
    sql = datasets._in_range(template, (10, 20))
    assert "__range" not in sql and '."patient_id" < 20)' in sql


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_study_tables_are_the_same_on_one_or_two_connections(committed_cohort, settings):
    settings.ANALYTICS_READ_CONNECTIONS = 1
    one = tables.strip_internal(tables.study_tables(None))
    settings.ANALYTICS_READ_CONNECTIONS = 2
    two = tables.strip_internal(tables.study_tables(None))
    one.pop("generated_at"), two.pop("generated_at")
    assert one == two


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_other_connections_see_the_data_as_of_the_export(
    committed_cohort, settings, monkeypatch
):
    """A save committed after the export, before the second connection reads its range,
    is not seen: every range is read on the exporter's snapshot."""
    last = committed_cohort["B-02"]  # the highest id: in the second (last) range
    assert FollowUp.objects.get(pk=last.pk).mrs_3m == 5
    others = list(
        FollowUp.objects.exclude(pk=last.pk).exclude(mrs_3m=None).values_list("mrs_3m", flat=True)
    )
    read_in_snapshot = datasets._read_in_snapshot

    def save_first(alias, *args):
        FollowUp.objects.using(alias).filter(pk=last.pk).update(mrs_3m=0)  # autocommit
        connections[alias].close()
        return read_in_snapshot(alias, *args)

    monkeypatch.setattr(datasets, "_read_in_snapshot", save_first)
    frame = _read(2, settings)
    assert FollowUp.objects.get(pk=last.pk).mrs_3m == 0  # saved during the read
    assert sorted(frame["r_mrs_month3"].dropna()) == sorted([*others, 5])  # as of the export


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_worker_connections_are_closed_afterwards(committed_cohort, settings):
    threads_before = threading.active_count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        sessions_before = cursor.fetchone()[0]
    _read(2, settings)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        assert cursor.fetchone()[0] == sessions_before
    assert threading.active_count() == threads_before


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_server_that_refuses_to_export_gets_the_read_on_one_connection(
    committed_cohort, settings, monkeypatch, caplog
):
    one = _read(1, settings)
    monkeypatch.setattr(datasets, "_EXPORT_SQL", "SELECT pg_no_such_function(), 1, 2 FROM {table}")
    with CaptureQueriesContext(connection) as captured:
        fallback = _read(2, settings)
    assert _sorted(fallback).equals(_sorted(one))
    assert "read on one connection" in caplog.text and "pg_no_such_function" in caplog.text
    assert sum("COPY (" in q["sql"] for q in captured.captured_queries) == 1
    with connection.cursor() as cursor:  # the connection is usable afterwards
        cursor.execute("SELECT 1")


@on_postgresql
def test_inside_a_transaction_the_read_stays_on_its_connection(committed_cohort, settings):
    # pytest-django's usual test runs in a transaction: other connections would not
    # see its rows, so the read must not split.
    with CaptureQueriesContext(connection) as captured:
        frame = _read(2, settings)
    assert len(frame) == 10
    assert not any("pg_export_snapshot" in q["sql"] for q in captured.captured_queries)


pytestmark = pytest.mark.django_db


def test_parts_keep_text_columns_categorical_with_every_code():
    import pandas as pd

    first = pd.DataFrame({"r_circulation": pd.Categorical(["anterior", None])})
    second = pd.DataFrame({"r_circulation": pd.Categorical(["posterior"])})
    both = datasets._concat([first, second])["r_circulation"]
    assert isinstance(both.dtype, pd.CategoricalDtype)
    assert list(both.cat.categories) == ["anterior", "posterior"]
    assert both.tolist()[0] == "anterior" and pd.isna(both.tolist()[1])
    assert both.tolist()[2] == "posterior"
