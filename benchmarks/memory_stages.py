"""Where the study tables' memory peaks: resident memory sampled at each stage.

Usage (the configured database, e.g. the 1,000,000-patient benchmark cohort; it
writes nothing)::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/memory_stages.py

A thread reads the process's resident memory (``/proc/self/statm``) every 5 ms while
``analytics.tables.study_tables`` runs and the result is written as JSON; each sample is
charged to the innermost stage running (the functions wrapped below). It prints, per
stage, the resident memory when it started, its highest and when it ended, in MiB, then
the process's peak (``getrusage``; Linux only).
"""

from __future__ import annotations

import functools
import json
import os
import resource
import threading
import time

from _django import setup

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """The process's resident memory, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Stages:
    """The stages running (a stack) and, per stage, its memory at start, highest, end."""

    def __init__(self) -> None:
        self.stack: list[str] = ["start"]
        self.rows: dict[str, list[int]] = {"start": [rss(), rss(), rss()]}
        self.lock = threading.Lock()
        self.done = threading.Event()

    def sample(self) -> None:
        while not self.done.wait(0.005):
            now = rss()
            with self.lock:
                for name in self.stack:  # an outer stage includes its inner ones
                    self.rows[name][1] = max(self.rows[name][1], now)

    def wrap(self, owner, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def staged(*args, **kwargs):
            with self.lock:
                now = rss()
                row = self.rows.setdefault(label, [now, now, now])
                row[1] = max(row[1], now)
                self.stack.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.stack.remove(label)
                    row[2] = rss()
                    row[1] = max(row[1], row[2])

        setattr(owner, attribute, staged)


def main() -> None:
    setup()
    import pandas as pd

    from analytics import cells, datasets, pgread, regression, tables

    stages = Stages()
    for owner, attribute in (
        (datasets, "fetch_analysis"),
        (pgread, "copy_out"),
        (pd, "read_csv"),
        (pgread, "_concat"),
        (datasets, "_analysed"),
        (datasets, "_columns_from"),
        (tables, "followup_window"),
        (cells, "count_columns"),
        (tables, "baseline"),
        (tables, "regression"),
        (regression, "fit"),
        (regression, "fit_shift"),
        (tables, "shift"),
    ):
        stages.wrap(owner, attribute, f"{owner.__name__.split('.')[-1]}.{attribute}")
    sampler = threading.Thread(target=stages.sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    stages.wrap(json, "dumps", "json.dumps")
    stages.stack.append("study_tables")
    stages.rows["study_tables"] = [rss(), rss(), rss()]
    text = json.dumps(tables.study_tables(), indent=2)
    stages.rows["study_tables"][2] = rss()
    stages.done.set()
    sampler.join()
    print(f"{len(text)} characters of JSON in {time.perf_counter() - started:.1f} s")
    print(f"{'stage':32} {'start':>8} {'highest':>8} {'end':>8}  (MiB)")
    for name, (start, highest, end) in stages.rows.items():
        print(f"{name:32} {start / MIB:8.0f} {highest / MIB:8.0f} {end / MIB:8.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"process peak (getrusage): {peak / MIB:.0f} MiB; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
