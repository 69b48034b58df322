"""The Stata file holds the values the CSV export holds, on a drawn cohort with every edge
(unknown times, patients without sections, non-ASCII and awkward free text, top-coded
ages), identifiable and de-identified; on PostgreSQL, where the rows are read through
``COPY``, the file is the one the Python reader writes."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone

from registry.interchange import columns as interchange
from registry.interchange import exporter
from registry.interchange.exporter import registry_export

from .drawn_cohort import awkward_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixed_key(monkeypatch):
    """The de-identified order's key, the same for every export of one test."""
    monkeypatch.setattr(exporter.secrets, "token_hex", lambda n: "5e" * n)


def stata_frame(content: bytes, tmp_path) -> pd.DataFrame:
    path = tmp_path / "export.dta"
    path.write_bytes(content)
    return pd.read_stata(path, convert_categoricals=False)


def python_value(column: exporter.OutColumn, value):
    """The value the exporter had, from what ``read_stata`` gives for it."""
    if not isinstance(value, str) and pd.isna(value):
        return None
    if column.kind == interchange.FLAG:
        return bool(value)
    if column.kind == interchange.CATEGORY:
        return column.source.codes[int(value) - 1][0]
    if column.kind == interchange.INTEGER:
        return int(value)
    if column.kind == interchange.DATE:
        return value.date()
    if column.kind == interchange.DATETIME:
        return timezone.make_aware(value.to_pydatetime())
    return value


def stata_as_csv(frame: pd.DataFrame, deidentified: bool) -> list[list[str]]:
    """The Stata file's rows written as the CSV export writes its cells."""
    columns = exporter.out_columns(deidentified)
    text = [(c.name, exporter.formatter(c), c) for c in columns]
    return [
        [write(python_value(c, row[name])) for name, write, c in text]
        for row in frame.to_dict("records")
    ]


def csv_cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


@pytest.mark.parametrize("deidentified", [False, True])
def test_the_stata_file_holds_the_csv_exports_values(deidentified, fixed_key, tmp_path):
    awkward_cohort()
    dta = registry_export(user=None, fmt="dta", deidentified=deidentified).content
    content = registry_export(user=None, fmt="csv", deidentified=deidentified).content
    header, *rows = csv_cells(content)
    frame = stata_frame(dta, tmp_path)
    assert list(frame.columns) == header
    assert stata_as_csv(frame, deidentified) == rows
    assert len(rows) == 120


def test_the_stata_file_keeps_unknown_times_and_non_ascii_text(tmp_path):
    awkward_cohort()
    frame = stata_frame(registry_export(user=None, fmt="dta", deidentified=False).content, tmp_path)
    assert frame["onset_time"].isna().sum() >= 10
    assert frame["door_time"].isna().sum() >= 3
    assert "Nguyễn Văn Ánh — ổn định" in set(frame["stent_device"])
    assert "two\nlines" in set(frame["stent_device"])


def without_timestamp(content: bytes) -> bytes:
    """The file without the time it was written at (its header's ``<timestamp>``)."""
    return re.sub(rb"<timestamp>.*?</timestamp>", b"", content, count=1, flags=re.S)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's COPY")
@pytest.mark.parametrize("deidentified", [False, True])
def test_the_stata_file_read_through_copy_is_the_python_readers(deidentified, fixed_key):
    awkward_cohort()
    export = registry_export(user=None, fmt="dta", deidentified=deidentified)
    by_server = b"".join(export.chunks(by_server=True))
    by_python = b"".join(export.chunks(by_server=False))
    assert b"<timestamp>" in by_server
    assert without_timestamp(by_server) == without_timestamp(by_python)


def test_an_empty_registrys_stata_file_has_the_columns_and_no_rows(tmp_path):
    frame = stata_frame(registry_export(user=None, fmt="dta", deidentified=False).content, tmp_path)
    assert len(frame) == 0
    assert list(frame.columns) == [c.name for c in exporter.out_columns(False)]
