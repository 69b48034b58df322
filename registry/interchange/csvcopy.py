"""CSV written by PostgreSQL itself: ``COPY (SELECT ...) TO STDOUT (FORMAT csv, HEADER)``.

Formatting a million rows of fifty columns in Python costs minutes of CPU; the server
formats them in C while it reads them. Each column is one SQL expression giving the
cell's text (NULL for an empty cell), written next to its Python twin
(``columns.sql_formatter`` beside ``columns.formatter``), so that both writers give the
same bytes (``tests/test_export_copy.py`` compares them). Any CSV made of declared
columns can use it: give ``csv_select`` the columns and ``copy_csv`` the query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext

from django.db import connections

# The pieces sent: about this many bytes each (several hundred rows).
PIECE_BYTES = 256 * 1024


def csv_select(columns: Sequence[tuple[str, str]], source: str, *, order_by: str) -> str:
    """``SELECT`` of the CSV's columns, (name, SQL of its text), from the subquery
    ``source`` (its columns are referred to by their aliases), ordered by ``order_by``.
    The names become the header of ``COPY ... HEADER``."""
    from django.db import connection

    quote = connection.ops.quote_name
    cells = ",\n  ".join(f"{sql} AS {quote(name)}" for name, sql in columns)
    return f"SELECT\n  {cells}\nFROM ({source}) AS source\nORDER BY {order_by}"


def copy_csv(
    sql: str, params: Sequence, *, using: str = "default", piece_bytes: int | None = None
) -> Iterator[bytes]:
    """The CSV (with a header, lines ending in LF, UTF-8) of the rows of ``sql`` in pieces
    of about ``piece_bytes``, read from the server while they are sent.

    The rows come through psycopg's ``Cursor.copy`` (``params`` bound on the client, as
    COPY takes no parameters); memory holds one piece whatever the number of rows. A
    consumer that stops early closes the generator: psycopg then cancels the COPY.
    """
    limit = piece_bytes or PIECE_BYTES
    connection = connections[using]
    copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"
    with connection.cursor() as cursor:
        # COPY goes past Django's cursor wrapper: log it as a query (tests count them).
        logged = (
            cursor.debug_sql(copy_sql, params) if hasattr(cursor, "debug_sql") else nullcontext()
        )
        with connection.wrap_database_errors, logged:
            with cursor.cursor.copy(copy_sql, params) as copy:
                piece = bytearray()
                for row in copy:
                    piece += row
                    if len(piece) >= limit:
                        yield bytes(piece)
                        piece.clear()
                yield bytes(piece)
