"""The study tables' read on PostgreSQL: COPY into pandas, on one connection or several.

``analytics.datasets`` compiles the per-patient query; this module only carries its rows:

* ``COPY (...) TO STDOUT (FORMAT csv)``, read with libpq's ``PQgetCopyData`` into one
  buffer (``copy_out``) and parsed by pandas in C: converting a large registry's rows to
  Python tuples would cost more than the query itself (docs/performance.md).
* On a large registry, several connections (``settings.ANALYTICS_READ_CONNECTIONS``):
  one connection is one server process, which keeps one core busy evaluating and
  formatting rows while the others wait. Each connection reads a range of patient ids,
  in a thread, on ONE exported snapshot, so that together they see exactly the data a
  single read would (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``, as
  ``pg_dump --jobs`` does). Inside a caller's transaction (tests, an atomic request)
  the read stays on the caller's connection: other connections cannot see its
  uncommitted rows.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import select
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction

from registry.models import Patient

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

Query = tuple[str, tuple]
"""SQL with ``%s`` placeholders and its parameters."""


def read(
    alias: str,
    query: Query,
    dtypes: dict[str, str],
    *,
    ranged: Callable[[], Query] | None = None,
) -> pd.DataFrame:
    """The rows of ``query`` on database ``alias``, as a frame of columns ``dtypes``.

    Parameters
    ----------
    alias : str
        The database (PostgreSQL).
    query : (str, tuple)
        The SQL and its parameters; its columns are the keys of ``dtypes``, in order.
    dtypes : dict
        Column name -> pandas dtype.
    ranged : callable, optional
        Gives the same query as a template for one range of patient ids
        (``range_template``). With it, outside a transaction and with
        ``settings.ANALYTICS_READ_CONNECTIONS`` > 1, a registry of at least
        ``settings.ANALYTICS_SPLIT_MIN_PATIENTS`` patients (by the span of their ids) is
        read by several connections on one snapshot; a server that refuses to export a
        snapshot gets the read on one connection, and a warning in the log.

    Returns
    -------
    pandas.DataFrame
        The rows in no fixed order.
    """
    connection_ = connections[alias]
    several = settings.ANALYTICS_READ_CONNECTIONS > 1 and not connection_.in_atomic_block
    if ranged is not None and several:
        try:
            return _read_parts(alias, query, ranged, dtypes)
        except _SnapshotRefused as refused:
            logger.warning("study tables read on one connection: %s", refused.__cause__)
    return _read_copy(connection_, *query, dtypes)


def copy_out(cursor, copy_sql: str, params: tuple, setup: str = "") -> bytes | bytearray:
    """Every row of ``COPY (...) TO STDOUT``, read with libpq's PQgetCopyData.

    Parameters
    ----------
    cursor : psycopg.Cursor
        A psycopg cursor (Django's ``cursor.cursor``).
    copy_sql : str
        The ``COPY`` statement, with ``%s`` placeholders for ``params``.
    setup : str
        A statement (e.g. a ``SET LOCAL``) sent in the same simple query as the COPY:
        both run in one transaction (the query's own, or the caller's if one is open),
        so a ``SET LOCAL`` ends with it, without a query of its own.

    Returns
    -------
    bytes or bytearray
        The rows as the server wrote them.

    Notes
    -----
    psycopg's ``Copy`` iterator pays a Python generator round trip per row; the loop
    below uses psycopg's documented libpq wrapper (``psycopg.pq``) instead, and appends
    each row to one ``bytearray``: keeping a million small ``bytes`` alive for a final
    ``join`` costs the reading thread far more CPU than freeing and reusing each row's
    buffer at once (and that CPU competes with the server processes for the same cores).
    A cursor that binds on the server (no ``mogrify``) uses the iterator.
    """
    import psycopg  # only on PostgreSQL
    from psycopg import pq

    if not hasattr(cursor, "mogrify"):
        with cursor.connection.transaction():  # a SET LOCAL needs a transaction
            if setup:
                cursor.execute(setup)
            with cursor.copy(copy_sql, params) as copy:
                return b"".join(copy)
    copy_sql = cursor.mogrify(copy_sql, params)
    query = (f"{setup}; {copy_sql}" if setup else copy_sql).encode(cursor.connection.info.encoding)
    data, errors = bytearray(), []
    with cursor.connection.lock:
        pgconn = cursor.connection.pgconn
        pgconn.send_query(query)
        while True:
            while pgconn.is_busy():
                _wait_for_server(pgconn)
            if (result := pgconn.get_result()) is None:
                break
            if result.status == pq.ExecStatus.COPY_OUT:
                while (row := pgconn.get_copy_data(1))[0] >= 0:  # -1: the COPY has ended
                    if row[0]:
                        data += row[1]
                    else:  # nothing buffered yet
                        _wait_for_server(pgconn)
            elif result.status != pq.ExecStatus.COMMAND_OK:
                errors.append(result.error_message)
    if errors:
        raise psycopg.DatabaseError(b"; ".join(e or b"COPY failed" for e in errors).decode())
    return data


def _wait_for_server(pgconn) -> None:
    """Wait until the server has sent more, without holding the GIL.

    libpq's blocking calls wait while holding it: with several connections reading in
    threads, each thread would then wait on the other's server (even the second
    connection's opening would wait for the first one's rows). The non-blocking calls
    return at once; ``select`` lets the other threads run.
    """
    select.select([pgconn.socket], [], [])
    pgconn.consume_input()


def _read_copy(connection_, sql: str, params: tuple, dtypes: dict[str, str]) -> pd.DataFrame:
    """The whole of one query with COPY, on ``connection_``."""
    import pandas as pd

    copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
    workers = settings.ANALYTICS_PARALLEL_WORKERS  # None: the server's own setting
    setup = "" if workers is None else f"SET LOCAL max_parallel_workers_per_gather = {workers:d}"
    with connection_.cursor() as cursor:
        # COPY bypasses the cursor wrapper: log it like any query (tests count them).
        logged_sql = f"{setup}; {copy_sql}" if setup else copy_sql
        logged = (
            cursor.debug_sql(logged_sql, params) if hasattr(cursor, "debug_sql") else nullcontext()
        )
        with connection_.wrap_database_errors, logged:
            data = copy_out(cursor.cursor, copy_sql, params, setup)
    if not data:
        return empty_frame(dtypes)
    rows = io.BytesIO(data)  # a copy of the bytearray: the original goes before parsing
    del data
    return pd.read_csv(rows, header=None, names=list(dtypes), dtype=dtypes)


def empty_frame(dtypes: dict[str, str]) -> pd.DataFrame:
    """A frame without rows, with the columns and dtypes of a read."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})


# -- ranges of patient ids -------------------------------------------------------------------

_FROM, _TO = "__range_from__", "__range_to__"


def range_template(sql: str, names: list[str]) -> str:
    """A per-patient query (selecting ``names`` and the patient id as ``r_range_pk``) as
    a template for the patients ``_FROM <= id < _TO``.

    The range restricts the patients and, inside each join's ON clause, the joined
    table's ``patient_id`` (every join of the read is on it): PostgreSQL then reads only
    that range of each section instead of hashing all of it for every range. In the ON
    clause it changes no row of a LEFT JOIN: a patient's sections carry the patient's id.
    """
    quote = connection.ops.quote_name
    patient_id = f"{quote(Patient._meta.db_table)}.{quote(Patient._meta.pk.column)}"
    join = re.compile(rf'ON \({re.escape(patient_id)} = ("\w+")\."patient_id"\)')
    sql = join.sub(
        rf'ON ({patient_id} = \1."patient_id" AND \1."patient_id" >= {_FROM}'
        rf' AND \1."patient_id" < {_TO})',
        sql,
    )
    columns = ", ".join(quote(name) for name in names)
    return f"SELECT {columns} FROM ({sql}) part WHERE r_range_pk >= {_FROM} AND r_range_pk < {_TO}"


def _in_range(template: str, bounds: tuple[int, int]) -> str:
    """``template`` for the ids ``bounds[0] <= id < bounds[1]`` (whole numbers, written
    into the SQL: the template's parameters stay as they are)."""
    low, high = (int(b) for b in bounds)
    return template.replace(_FROM, str(low)).replace(_TO, str(high))


def _id_ranges(low: int | None, high: int | None, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges ``[from, to)`` of equal width covering ``low..high``; one range
    covering every id when the span is under ``settings.ANALYTICS_SPLIT_MIN_PATIENTS``
    (a second connection costs more than it saves on a small registry)."""
    if low is None or high - low + 1 < max(settings.ANALYTICS_SPLIT_MIN_PATIENTS, parts):
        return [(low or 0, (high or 0) + 1)]
    edges = [low + (high - low + 1) * i // parts for i in range(parts)] + [high + 1]
    return list(itertools.pairwise(edges))


# -- several connections on one snapshot -----------------------------------------------------

_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
_EXPORT_SQL = "SELECT pg_export_snapshot(), MIN(id), MAX(id) FROM {table}"


class _SnapshotRefused(Exception):
    """The server would not export a snapshot: the read falls back to one connection."""


def _read_parts(
    alias: str, query: Query, ranged: Callable[[], Query], dtypes: dict[str, str]
) -> pd.DataFrame:
    connection_ = connections[alias]
    with transaction.atomic(using=alias):
        snapshot, low, high = _export_snapshot(connection_)
        bounds = _id_ranges(low, high, settings.ANALYTICS_READ_CONNECTIONS)
        if len(bounds) == 1:
            return _read_copy(connection_, *query, dtypes)
        template, params = ranged()
        with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
            others = [
                pool.submit(
                    _read_in_snapshot, alias, snapshot, _in_range(template, b), params, dtypes
                )
                for b in bounds[1:]
            ]
            first = _read_copy(connection_, _in_range(template, bounds[0]), params, dtypes)
            frames = [first, *(future.result() for future in others)]
    return _concat(frames)


def _export_snapshot(connection_) -> tuple[str, int | None, int | None]:
    """In a new transaction: its snapshot's id, the lowest and the highest patient id."""
    table = connection_.ops.quote_name(Patient._meta.db_table)
    with connection_.cursor() as cursor:
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(_EXPORT_SQL.format(table=table))
        except DatabaseError as error:  # the transaction is aborted: start again outside
            raise _SnapshotRefused from error
        return cursor.fetchone()


def _read_in_snapshot(alias: str, snapshot: str, sql: str, params: tuple, dtypes: dict[str, str]):
    """One range, in a worker thread: its own connection (Django's connections are per
    thread), closed afterwards, in a transaction on the exporter's snapshot."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):  # it is pasted into the SQL: check its form
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    connection_ = connections[alias]
    try:
        with transaction.atomic(using=alias), connection_.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return _read_copy(connection_, sql, params, dtypes)
    finally:
        connection_.close()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts as one frame; a text column stays categorical (pandas would make it
    ``object`` when the parts saw different codes) with the codes of all parts."""
    import pandas as pd

    for name, dtype in frames[0].dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            codes = sorted(set().union(*(f[name].cat.categories for f in frames)))
            for f in frames:
                f[name] = f[name].cat.set_categories(codes)
    return pd.concat(frames, ignore_index=True)
