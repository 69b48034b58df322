"""The import streams: a file is read, checked and written a chunk of rows at a time,
in memory that does not grow with the file, with the same problems, counts and plan
whatever the chunk size, and all or nothing across chunks (one transaction)."""

from __future__ import annotations

import tracemalloc

import pytest
from django.core.management import call_command
from django.db import transaction

from registry.interchange import importer
from registry.interchange.importer import registry_import
from registry.models import SECTION_MODELS, Patient

from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db


def _rows(count: int, **bad) -> list[dict]:
    """``count`` valid rows; ``bad`` maps a row number (1-based) to its overrides."""
    found = [row(study_id=f"T-{n:05d}", age_years=20 + n % 60) for n in range(1, count + 1)]
    for number, overrides in bad.items():
        found[int(number) - 1].update({k: str(v) for k, v in overrides.items()})
    return found


def _import(tmp_path, rows, chunk, monkeypatch, **kwargs):
    monkeypatch.setattr(importer, "CHUNK_ROWS", chunk)
    path = write_csv(tmp_path, rows)
    return registry_import(file=path, filename=path.name, **kwargs)


def _outcome(result) -> tuple:
    return (
        [str(p) for p in result.problems],
        [str(w) for w in result.warnings],
        (result.rows, result.created, result.changed, result.unchanged),
        result.diff_lines(),
        result.plan_digest,
    )


def _stored() -> list[tuple]:
    """Every stored patient with each section's values, in study-ID order."""
    names = ["study_id", "site__code", "sex", "age_years"]
    for model in SECTION_MODELS:
        names += [f"{model.key}__{n}" for n in ("status", *model.clinical_fields())]
    return list(Patient.objects.order_by("study_id").values_list(*names))


# Rows 7 and 8 are the last of one 7-row chunk and the first of the next; row 16
# repeats row 3's study ID from another chunk; row 20 is the file's last.
BAD = {
    "7": {"age_years": 17},
    "8": {"nihss_admission": 99},
    "16": {"study_id": "T-00003"},
    "20": {"sex": "X"},
}


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_problems_at_chunk_boundaries_are_those_of_the_whole_file_at_once(
    tmp_path, site_a, monkeypatch, chunk
):
    whole = _outcome(_import(tmp_path, _rows(20, **BAD), 10**9, monkeypatch))
    chunked = _outcome(_import(tmp_path, _rows(20, **BAD), chunk, monkeypatch))
    assert chunked == whole
    rows_with_problems = sorted({p.split(",")[0] for p in chunked[0]})
    assert rows_with_problems == ["row 16", "row 20", "row 7", "row 8"]
    assert not Patient.objects.exists()


@pytest.mark.parametrize("chunk", [1, 7])
def test_a_valid_file_writes_the_same_records_whatever_the_chunk_size(
    tmp_path, site_a, admin_user, monkeypatch, chunk
):
    stored = _rows(12)  # a second file changes some of these and adds others
    _import(tmp_path, stored, 10**9, monkeypatch, user=admin_user)
    changed = _rows(20, **{"7": {"age_years": 70}, "8": {"nihss_admission": 3}})
    states = []
    for size in (10**9, chunk):
        with transaction.atomic():
            result = _import(tmp_path, changed, size, monkeypatch, user=admin_user)
            assert result.ok, result.problems
            states.append((_outcome(result), _stored()))
            transaction.set_rollback(True)
    assert states[0] == states[1]
    assert states[0][0][2] == (20, 8, 2, 10)  # rows, created, changed, unchanged


def test_an_error_in_the_last_row_leaves_the_registry_as_it_was(
    tmp_path, site_a, admin_user, monkeypatch
):
    _import(tmp_path, _rows(5), 10**9, monkeypatch, user=admin_user)
    before = _stored()
    rows = _rows(40, **{"2": {"age_years": 99}, "3": {"age_years": 17}, "40": {"sex": "X"}})
    # Chunks of 7: the first chunks are valid and written, then undone with the rest.
    result = _import(tmp_path, rows, 7, monkeypatch, user=admin_user)
    assert not result.ok
    assert [p.row for p in result.problems] == [3, 40]  # every problem of the file
    assert _stored() == before


def test_the_command_writes_nothing_when_a_late_row_is_wrong(tmp_path, site_a, monkeypatch, capsys):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 4)
    path = write_csv(tmp_path, _rows(30, **{"30": {"age_years": 17}}))
    with pytest.raises(SystemExit) as stopped:
        call_command("import_registry", str(path))
    assert stopped.value.code == 1
    errors = capsys.readouterr().err
    assert "row 30, column age_years" in errors and "nothing was written" in errors
    assert not Patient.objects.exists()


def test_the_command_imports_more_rows_than_the_web_limit(tmp_path, site_a, settings, capsys):
    settings.IMPORT_MAX_ROWS = 5
    path = write_csv(tmp_path, _rows(12))
    call_command("import_registry", str(path))
    assert "12 rows: 12 patients were created" in capsys.readouterr().out
    assert Patient.objects.count() == 12


def _peak_traced_bytes(tmp_path, count: int) -> int:
    path = write_csv(tmp_path, _rows(count), name=f"rows-{count}.csv")
    tracemalloc.start()
    try:
        result = registry_import(file=path, filename=path.name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.ok and result.created == count, result.problems[:3]
    return peak


def test_the_import_peak_memory_does_not_grow_from_2000_to_20000_rows(
    tmp_path, site_a, monkeypatch
):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 500)
    small = _peak_traced_bytes(tmp_path, 2_000)
    Patient.objects.all().delete()
    large = _peak_traced_bytes(tmp_path, 20_000)
    # Ten times the rows, the same chunk in memory: what grows is the file's study IDs
    # (to find a repeated one), far below a kept row (several kB).
    assert (large - small) / 18_000 < 400, (small, large)
