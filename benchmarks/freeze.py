"""Time and peak memory of a data freeze on the configured database.

Usage::

    DEBUG=1 DATABASE_URL=sqlite:////tmp/bench/n20k.sqlite3 FREEZE_CACHE_DIR=/tmp/bench/fc \\
        .venv/bin/python benchmarks/freeze.py

Freezes every patient (name ``bench-<time>``), then times reading it back verified,
its comparison with the live data, loading it into its own database (the first
computation from it) and the study tables from it and live; prints each step's wall
seconds and the process's peak resident memory so far (the steps that hold least
come first, so each peak is that step's), and the compressed and uncompressed sizes.
The freeze is deleted at the end (its audit row stays). Writes to the database: never
run it on a database others read.
"""

from __future__ import annotations

import resource
import time

import _django

_django.setup()

from analytics.tables import study_tables  # noqa: E402
from registry import freezes  # noqa: E402


def step(label: str, work):
    start = time.perf_counter()
    result = work()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<34} {time.perf_counter() - start:8.1f} s   peak RSS {peak:7.0f} MB")
    return result


def main() -> None:
    name = f"bench-{int(time.time())}"
    freeze = step(
        "freeze_create", lambda: freezes.freeze_create(name=name, reason="benchmark", user=None)
    )
    size = sum(len(piece) for piece in freezes.freeze_csv(freeze=freeze))
    stored = len(freeze.rows_gz)
    print(f"{freeze.n_patients} patients: CSV {size / 1e6:.1f} MB, stored {stored / 1e6:.1f} MB")
    step("freeze_verify", lambda: freezes.freeze_verify(freeze=freeze))
    comparison = step("freeze_compare with live", lambda: freezes.freeze_compare(freeze=freeze))
    print(f"differences: {comparison.n_differences}")
    step("freeze_database (first build)", lambda: freezes.freeze_database(freeze=freeze))
    step("study_tables from the freeze", lambda: study_tables(None, freeze=freeze))
    step("study_tables live", lambda: study_tables(None))
    freezes.freeze_delete(freeze=freeze, user=None, reason="benchmark done")


if __name__ == "__main__":
    main()
