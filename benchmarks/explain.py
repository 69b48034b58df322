"""EXPLAIN (ANALYZE, BUFFERS) of every SELECT the nurse's pages issue (PostgreSQL).

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/explain.py [--page "patient list"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--page", action="append", help="only this page (repeatable)")
    parser.add_argument("--all", action="store_true", help="also queries under 1 ms")
    args = parser.parse_args(argv)
    _django.setup()
    from django.db import connection
    from pages import measure_pages

    for page, result in measure_pages(repeat=3).items():
        if args.page and page not in args.page:
            continue
        print(f"=== {page}: {result['ms']:.1f} ms, {result['queries']} queries")
        for sql, ms in zip(result["sql"], result["sql_ms"], strict=True):
            print(f"--- {ms:.2f} ms: {sql[:300]}{'...' if len(sql) > 300 else ''}")
            if not sql.lstrip().upper().startswith("SELECT") or (ms < 1 and not args.all):
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                for (line,) in cursor.fetchall():
                    print("    " + line)


if __name__ == "__main__":
    main()
