"""The CSV export's COPY on PostgreSQL, identifiable and de-identified, interleaved.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/export_copy.py [--repeat 2]

Runs the server's ``COPY (SELECT ...) TO STDOUT`` of both exports one after the other,
``--repeat`` times, in one process and without writing the export log: on a machine
others share, the two are then measured under the same load. Prints wall seconds and
megabytes for each, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import _django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    _django.setup()
    from registry.interchange import csvcopy
    from registry.interchange.exporter import _copy_query
    from registry.models import Patient

    patients = Patient.objects.all()
    n = patients.count()
    print(f"{n:,} patients (load {os.getloadavg()[0]:.1f})")
    for _ in range(options.repeat):
        for deidentified in (False, True):
            sql, params = _copy_query(patients, deidentified=deidentified, n=n)
            start = time.perf_counter()
            size = sum(len(piece) for piece in csvcopy.copy_csv(sql, params))
            kind = "de-identified" if deidentified else "identifiable"
            print(
                f"{kind:14} {time.perf_counter() - start:7.1f} s {size / 1e6:7.0f} MB", flush=True
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
