"""analytics.pgread: the study tables' read on PostgreSQL, by COPY, on one connection or
several sharing one exported snapshot.

Outside a transaction, each connection reads a range of patient ids in its own thread;
together they must give exactly the rows of one read, as of one moment, even while
nurses save. The reads go through the public ``datasets.fetch_analysis`` /
``datasets.fetch_columns`` with the settings that choose the path; the COPY itself
through ``pgread.copy_out``.
"""

import threading

import pandas as pd
import pytest
from django.db import DatabaseError, connection, transaction
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from analytics import datasets, pgread, tables
from analytics.datasets import ANALYSIS, Filters
from registry.models import FollowUp, Patient

from .analytics_cohort import build_cohort, make_patient

# COPY, exported snapshots and the server settings around them are PostgreSQL's; these
# tests run in CI's PostgreSQL pass (DATABASE_URL=postgres://...).
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's COPY"),
]


def _frame(columns) -> pd.DataFrame:
    """Every patient's values, sorted: the rows come in no fixed order."""
    frame = pd.DataFrame(
        {
            **{f"flag_{key}": values for key, values in columns.flags.items()},
            **{f"raw_{key}": pd.Series(values) for key, values in columns.raw.items()},
            **{f"c_{key}": values for key, values in columns.continuous.items()},
        }
    )
    return frame.sort_values(list(frame.columns), ignore_index=True)


def _analysis(connections_: int, settings, filters: Filters | None = None):
    """The study tables' read with ``connections_`` connections: the sorted columns and
    the enrolment counts."""
    settings.ANALYTICS_READ_CONNECTIONS = connections_
    columns, counts = datasets.fetch_analysis(None, filters or Filters())
    return _frame(columns), counts


def _copies(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "COPY (" in q["sql"]]


@pytest.fixture
def committed_cohort(site_a, site_b, settings):
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 0
    return build_cohort(site_a, site_b)


# -- several connections ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_three_connections_read_exactly_the_rows_of_one(committed_cohort, settings):
    one, one_counts = _analysis(1, settings)
    with CaptureQueriesContext(connection) as captured:
        three, three_counts = _analysis(3, settings)
    assert len(one) == len(three) == 10
    assert one.equals(three) and one_counts == three_counts
    statements = [q["sql"] for q in captured.captured_queries]
    assert any("pg_export_snapshot()" in sql for sql in statements)
    (first,) = _copies(captured)  # the other two: other connections
    low = Patient.objects.order_by("pk").values_list("pk", flat=True)[0]
    # Ranges of equal width: the ten ids in parts of 3, 3 and 4.
    assert f"r_range_pk >= {low} AND r_range_pk < {low + 3}" in first


@pytest.mark.django_db(transaction=True)
def test_the_parts_keep_text_columns_categorical_with_every_code(committed_cohort, settings):
    # The last third (A-07, A-08, B-01, B-02) has no posterior patient: its part alone
    # knows one circulation code.
    settings.ANALYTICS_READ_CONNECTIONS = 3
    columns, _counts = datasets.fetch_analysis(None, Filters())
    circulation = columns.raw["circulation"]
    assert isinstance(circulation, pd.Categorical)
    assert list(circulation.categories) == ["anterior", "posterior"]
    assert sorted(circulation.astype(str)) == ["anterior"] * 8 + ["posterior"] * 2


@pytest.mark.django_db(transaction=True)
def test_a_filtered_read_on_two_connections_keeps_its_parameters(committed_cohort, settings):
    filters = Filters(site="A", circulation="anterior")
    (one, _), (two, _) = _analysis(1, settings, filters), _analysis(2, settings, filters)
    assert len(one) == 6  # site A's anterior patients (A-03, A-05 are posterior)
    assert one.equals(two)


@pytest.mark.django_db(transaction=True)
def test_each_connection_reads_its_range_of_every_section(committed_cohort, settings):
    with CaptureQueriesContext(connection) as captured:
        _analysis(2, settings)
    (first,) = _copies(captured)  # the lower half; the other connection reads the upper
    low = Patient.objects.order_by("pk").values_list("pk", flat=True)[0]
    joins = first.count(" JOIN ")
    assert joins == 7  # the five sections, the exclusion, the screening entry
    # each join's ON clause and the patients themselves
    assert first.count(f'."patient_id" >= {low} AND ') == joins
    assert first.count(f'."patient_id" < {low + 5})') == joins
    assert first.count(f"r_range_pk >= {low} AND r_range_pk < {low + 5}") == 1
    assert "__range" not in first


@pytest.mark.django_db(transaction=True)
def test_the_study_tables_are_the_same_on_one_or_two_connections(committed_cohort, settings):
    settings.ANALYTICS_READ_CONNECTIONS = 1
    one = tables.strip_internal(tables.study_tables(None))
    settings.ANALYTICS_READ_CONNECTIONS = 2
    two = tables.strip_internal(tables.study_tables(None))
    one.pop("generated_at"), two.pop("generated_at")
    assert one == two


@pytest.mark.django_db(transaction=True)
def test_the_other_connections_see_the_data_as_of_the_export(committed_cohort, settings):
    """A save committed after the export, before the second connection reads its range,
    is not seen: every range is read on the exporter's snapshot."""
    last = committed_cohort["B-02"]  # the highest id: in the second (last) range
    assert FollowUp.objects.get(pk=last.pk).mrs_3m == 5
    others = list(
        FollowUp.objects.exclude(pk=last.pk).exclude(mrs_3m=None).values_list("mrs_3m", flat=True)
    )
    saved = []

    def save_first(sender, connection, **kwargs):
        # The reading thread's connection, as it opens (autocommit, before its snapshot).
        if threading.current_thread() is not threading.main_thread() and not saved:
            saved.append(
                FollowUp.objects.using(connection.alias).filter(pk=last.pk).update(mrs_3m=0)
            )

    connection_created.connect(save_first)
    try:
        settings.ANALYTICS_READ_CONNECTIONS = 2
        columns = datasets.fetch_columns(datasets.patients(None, excluded=None), ANALYSIS)
    finally:
        connection_created.disconnect(save_first)
    assert saved == [1] and FollowUp.objects.get(pk=last.pk).mrs_3m == 0  # saved during the read
    month3 = columns.raw["mrs_month3"]
    assert sorted(month3[~pd.isna(month3)]) == sorted([*others, 5])  # as of the export


@pytest.mark.django_db(transaction=True)
def _sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_the_worker_connections_are_closed_afterwards(committed_cohort, settings):
    import time

    threads_before = threading.active_count()
    sessions_before = _sessions()
    _analysis(2, settings)
    # A server process leaves pg_stat_activity a moment after its client closes the
    # connection: wait for that (up to 5 s), then a connection left open still fails.
    for _ in range(50):
        if _sessions() == sessions_before:
            break
        time.sleep(0.1)
    assert _sessions() == sessions_before
    assert threading.active_count() == threads_before


@pytest.mark.django_db(transaction=True)
def test_a_server_that_refuses_to_export_gets_the_read_on_one_connection(
    committed_cohort, settings, caplog
):
    one, _ = _analysis(1, settings)

    def refuse(execute, sql, params, many, context):  # as a server without the function
        return execute(
            sql.replace("pg_export_snapshot()", "pg_no_such_function()"), params, many, context
        )

    with connection.execute_wrapper(refuse), CaptureQueriesContext(connection) as captured:
        fallback, _ = _analysis(2, settings)
    assert fallback.equals(one)
    assert "read on one connection" in caplog.text and "pg_no_such_function" in caplog.text
    (copy,) = _copies(captured)
    assert "r_range_pk" not in copy
    with connection.cursor() as cursor:  # the connection is usable afterwards
        cursor.execute("SELECT 1")


def test_inside_a_transaction_the_read_stays_on_its_connection(committed_cohort, settings):
    # pytest-django's usual test runs in a transaction: other connections would not
    # see its rows, so the read must not split.
    with CaptureQueriesContext(connection) as captured:
        frame, _ = _analysis(2, settings)
    assert len(frame) == 10
    assert not any("pg_export_snapshot" in q["sql"] for q in captured.captured_queries)


# -- a registry too small to split -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_small_registry_is_read_in_one_range(committed_cohort, settings):
    one, _ = _analysis(1, settings)
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 11  # ten ids: under the threshold
    with CaptureQueriesContext(connection) as captured:
        small, _ = _analysis(2, settings)
    (copy,) = _copies(captured)
    assert "r_range_pk" not in copy and small.equals(one)
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 10  # at the threshold: split
    with CaptureQueriesContext(connection) as captured:
        split, _ = _analysis(2, settings)
    assert "r_range_pk" in _copies(captured)[0] and split.equals(one)


@pytest.mark.django_db(transaction=True)
def test_fewer_patients_than_connections_or_none_are_read_in_one_range(site_a, settings):
    settings.ANALYTICS_SPLIT_MIN_PATIENTS = 0
    settings.ANALYTICS_READ_CONNECTIONS = 2
    columns, counts = datasets.fetch_analysis(None, Filters())  # an empty registry
    assert columns.n == 0 and counts["enrolled"] == 0
    make_patient(site_a)
    with CaptureQueriesContext(connection) as captured:
        columns, counts = datasets.fetch_analysis(None, Filters())
    assert columns.n == 1 and counts["enrolled"] == 1
    (copy,) = _copies(captured)
    assert "r_range_pk" not in copy


# -- COPY ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_parallel_workers_setting_ends_with_the_fetch(site_a, settings):
    """Out of any transaction (autocommit, as a management command runs), the SET LOCAL
    ends with the COPY's own transaction: the connection keeps the server's setting."""
    make_patient(site_a)
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        before = cursor.fetchone()[0]
    settings.ANALYTICS_PARALLEL_WORKERS = int(before) + 1
    sql = "COPY (SELECT current_setting('max_parallel_workers_per_gather')) TO STDOUT"
    with connection.cursor() as cursor:
        setup = f"SET LOCAL max_parallel_workers_per_gather = {int(before) + 1}"
        during = pgread.copy_out(cursor.cursor, sql, (), setup)
        assert datasets.count_table(datasets.patients(None), "baseline")["baseline:patients"] == 1
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == before
    assert during == f"{int(before) + 1}\n".encode()


def test_copy_out_applies_the_setup_with_a_server_binding_cursor_too():
    import psycopg

    connection.ensure_connection()
    sql = "COPY (SELECT current_setting('max_parallel_workers_per_gather')) TO STDOUT"
    setup = "SET LOCAL max_parallel_workers_per_gather = 7"
    assert pgread.copy_out(psycopg.Cursor(connection.connection), sql, (), setup) == b"7\n"


def test_copy_out_reads_every_row_with_either_kind_of_cursor():
    """The libpq loop (client-side binding) and psycopg's iterator (server-side
    binding, no mogrify) read the same bytes."""
    import psycopg

    sql = "COPY (SELECT g, %s FROM generate_series(1, 3) g) TO STDOUT (FORMAT csv)"
    with connection.cursor() as cursor:
        client_side = pgread.copy_out(cursor.cursor, sql, ("x",))
    server_side = pgread.copy_out(psycopg.Cursor(connection.connection), sql, ("x",))
    assert client_side == server_side == b"1,x\n2,x\n3,x\n"


def test_a_failing_copy_raises_a_database_error_and_the_connection_still_works():
    with pytest.raises(DatabaseError, match="division by zero"), transaction.atomic():
        with connection.cursor() as cursor, connection.wrap_database_errors:
            pgread.copy_out(cursor.cursor, "COPY (SELECT 1 / 0) TO STDOUT", ())
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


def test_copy_out_lets_other_threads_run_while_it_waits_for_the_server():
    """libpq's blocking calls keep the GIL: two reading threads (the split read) would
    each wait on the other's server. ``copy_out`` waits in ``select`` instead."""
    import time

    import psycopg

    given = connection.get_connection_params()  # the test database, as Django connects
    keys = ("dbname", "user", "password", "host", "port")
    conninfo = psycopg.conninfo.make_conninfo(**{k: given[k] for k in keys if given.get(k)})
    with psycopg.connect(conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        cursor = conn.cursor()
        sql = "COPY (SELECT pg_sleep(1.0), 1) TO STDOUT (FORMAT csv)"
        reader = threading.Thread(target=pgread.copy_out, args=(cursor, sql, ()))
        reader.start()
        longest, last = 0.0, time.perf_counter()
        while reader.is_alive():
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        reader.join()
    assert longest < 0.5  # never stopped for the whole wait (1 s), as libpq would


def test_copy_out_does_not_keep_an_object_per_row():
    """The rows go into one buffer, not one ``bytes`` per row kept until the end (a
    large registry's rows would cost the reading thread their allocation and a final
    join). 200,000 rows of 7 bytes are 1.4 MB of data: a list of rows and its join
    would trace tens of megabytes, the buffer little more than the data."""
    import tracemalloc

    sql = "COPY (SELECT 100000 + g FROM generate_series(1, 200000) g) TO STDOUT"
    with connection.cursor() as cursor:
        tracemalloc.start()
        try:
            data = pgread.copy_out(cursor.cursor, sql, ())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(data) == 200_000 * 7  # "100001\n" ... "300000\n"
    assert data.startswith(b"100001\n") and data.endswith(b"300000\n")
    # Room for the buffer's growth (a reallocation may hold old and new at once).
    assert peak < 10_000_000
