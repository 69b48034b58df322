"""The export streams: the file leaves while its patients are read, a chunk at a
time, in memory that does not grow with the registry, and in exactly the bytes the
whole-file writer produced."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from registry import synthetic
from registry.interchange import exporter
from registry.interchange.exporter import ExportRefused, registry_export
from registry.models import ExportLog

from .drawn_cohort import write

pytestmark = pytest.mark.django_db
GOLDEN = Path(__file__).parent / "reference" / "demo_export.csv"


def test_the_demo_cohort_exports_byte_for_byte_as_the_reference_file(monkeypatch, capsys):
    # The reference was written by the exporter that built the whole file in memory;
    # a small chunk makes this export cross many chunk and piece boundaries.
    call_command("seed_demo")
    monkeypatch.setattr(exporter, "CHUNK_ROWS", 7)
    monkeypatch.setattr(exporter, "PIECE_BYTES", 1000)
    export = registry_export(user=None, fmt="csv", deidentified=False)
    assert export.content == GOLDEN.read_bytes()


def test_the_web_export_sends_its_first_bytes_before_the_last_patient_is_written(
    client, admin_user, monkeypatch
):
    # Python writes the CSV on SQLite, the server (COPY) on PostgreSQL: either way the
    # first piece leaves holding a few of the 60 patients.
    write(synthetic.draw(np.random.default_rng(3), 60, sites=("S001", "S002")))
    monkeypatch.setattr(exporter, "CHUNK_ROWS", 10)
    monkeypatch.setattr(exporter, "PIECE_BYTES", 1000)
    client.force_login(admin_user)
    response = client.post(reverse("registry:export"), {"format": "csv", "identifiable": "on"})
    assert response.streaming
    pieces = iter(response.streaming_content)
    first = next(pieces)
    assert first.startswith(b"study_id,site,")
    assert first.count(b"\n") <= 10
    rest = b"".join(pieces)
    assert (first + rest).count(b"\n") == 61
    assert ExportLog.objects.get().n_patients == 60


def _peak_traced_bytes(**options) -> int:
    export = registry_export(user=None, fmt="csv", **options)
    tracemalloc.start()
    try:
        size = sum(len(piece) for piece in export.chunks())
        return tracemalloc.get_traced_memory()[1] if size else 0
    finally:
        tracemalloc.stop()


def test_the_csv_export_peak_memory_does_not_grow_from_2000_to_20000_patients(monkeypatch):
    # Reading chunk k + 1 while chunk k is still referenced holds two chunks at the peak:
    # with 500 rows a chunk and pieces of 32 kB, both cohort sizes span several of each
    # (the server's COPY holds one piece).
    monkeypatch.setattr(exporter, "CHUNK_ROWS", 500)
    monkeypatch.setattr(exporter, "PIECE_BYTES", 32 * 1024)
    sites = ("S001", "S002", "S003")
    write(synthetic.draw(np.random.default_rng(5), 2_000, sites=sites))
    small = _peak_traced_bytes(deidentified=True)
    write(synthetic.draw(np.random.default_rng(6), 18_000, first_id=2_001, sites=sites))
    large = _peak_traced_bytes(deidentified=True)
    # Ten times the patients, the same two chunks in memory.
    assert large < small * 1.2, (small, large)


def test_an_xlsx_export_beyond_the_sheet_limit_is_refused_with_the_alternatives(monkeypatch):
    write(synthetic.draw(np.random.default_rng(8), 12, sites=("S001",)))
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 11)
    with pytest.raises(ExportRefused, match="CSV or Stata"):
        registry_export(user=None, fmt="xlsx", deidentified=False)
    assert not ExportLog.objects.exists()
    assert registry_export(user=None, fmt="csv", deidentified=False).n_patients == 12


def test_the_export_page_refuses_a_too_large_xlsx_next_to_the_format(
    client, admin_user, monkeypatch
):
    write(synthetic.draw(np.random.default_rng(8), 12, sites=("S001",)))
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 11)
    client.force_login(admin_user)
    response = client.post(reverse("registry:export"), {"format": "xlsx", "identifiable": "on"})
    assert response.status_code == 200
    assert "CSV or Stata" in response.content.decode()
    assert "12 patients" in response.content.decode()
