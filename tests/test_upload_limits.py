"""Bounded uploads: what an import reads at most, how long the preview may take, what the
page shows, control characters, and where the uploaded file lives and for how long."""

import os
import stat
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from registry.interchange import columns as interchange
from registry.interchange import importer
from registry.interchange.importer import registry_import
from registry.models import Patient, Procedure

from .interchange_rows import csv_text, row, write_csv
from .test_interchange_views import confirmation

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_upload_dir(settings, tmp_path):
    settings.IMPORT_UPLOAD_DIR = str(tmp_path / "uploads")
    return tmp_path / "uploads"


def workbook(path, rows, header=None):
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("patients")
    header = list(header or interchange.column_names())
    sheet.append(header)
    for values in rows:
        sheet.append([values.get(name, "") for name in header])
    book.save(path)
    return path


def one_row_workbook(path, cells: int):
    """A tiny .xlsx whose only row holds ``cells`` cells (it unpacks 200 times larger)."""
    from openpyxl import Workbook

    Workbook().save(path)
    xml = "".join(f"<c><v>{n % 10}</v></c>" for n in range(cells))  # columns 1, 2, ...: no r=""
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
        'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
        f"{xml}</row></sheetData></worksheet>"
    )
    with zipfile.ZipFile(path) as source:
        members = {item: source.read(item.filename) for item in source.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item, data in members.items():
            if item.filename == "xl/worksheets/sheet1.xml":
                data = sheet.encode()
            target.writestr(item, data)
    return path


def upload(client, name, content, **extra):
    data = {"file": SimpleUploadedFile(name, content), **extra}
    return client.post(reverse("registry:import_upload"), data)


def problems_of(result) -> list[str]:
    return [str(problem) for problem in result.problems]


# --- rows, columns, memory, time ----------------------------------------------------------


def test_a_workbook_over_the_row_limit_is_refused_without_being_read_whole(
    site_a, tmp_path, settings
):
    settings.IMPORT_MAX_ROWS = 100
    rows = [row(study_id=f"T-{n:04d}") for n in range(150)]
    path = workbook(tmp_path / "big.xlsx", rows)
    result = registry_import(file=path, filename=path.name)
    assert problems_of(result) == [
        "the file has more than 100 rows; split it into files of at most 100 rows and "
        "import them one after the other."
    ]
    assert result.rows == 0 and not Patient.objects.exists()


def test_a_csv_over_the_row_limit_is_refused_and_one_at_the_limit_is_read(
    site_a, tmp_path, settings
):
    settings.IMPORT_MAX_ROWS = 3
    at_limit = [row(study_id=f"T-{n}") for n in range(3)]
    # Blank lines after the table are not rows; blank lines inside it are.
    path = tmp_path / "p.csv"
    path.write_text(csv_text(at_limit) + "\n\n,,,\n\n")
    assert registry_import(file=path, filename="p.csv").ok
    path.write_text(csv_text(at_limit[:2]) + "\n\n" + csv_text(at_limit[2:]).split("\n", 1)[1])
    assert "more than 3 rows" in problems_of(registry_import(file=path, filename="p.csv"))[0]


def test_a_csv_of_a_million_columns_is_refused_with_one_message(site_a, tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{n}" for n in range(1_000_000)) + "\n1\n")
    started = time.perf_counter()
    result = registry_import(file=path, filename=path.name)
    limit = len(interchange.columns()) + 10
    assert problems_of(result) == [
        f"the header has values in more than {limit} columns (the interchange has "
        f"{len(interchange.columns())}); remove the extra columns."
    ]
    assert time.perf_counter() - started < 10  # one read of the file, no problem per column


def test_blank_trailing_cells_beyond_the_column_limit_are_ignored(site_a, tmp_path):
    text = csv_text([row()])
    padded = "\n".join(line + "," * 500 for line in text.splitlines()) + "\n"
    path = tmp_path / "padded.csv"
    path.write_text(padded)
    assert registry_import(file=path, filename=path.name).ok


def test_a_workbook_with_one_row_of_a_million_cells_is_refused_within_its_memory(
    site_a, tmp_path, settings
):
    settings.IMPORT_XLSX_MEMORY_MB = 300
    path = one_row_workbook(tmp_path / "bomb.xlsx", 1_000_000)
    assert path.stat().st_size < 200_000
    result = registry_import(file=path, filename=path.name)
    (message,) = problems_of(result)
    assert message.startswith("the workbook cannot be read here (reading it needs more than 300 MB")


def test_a_workbook_with_a_value_beyond_the_columns_is_refused(site_a, tmp_path):
    limit = len(interchange.columns()) + 10
    header = [*interchange.column_names(), *[f"x{n}" for n in range(limit)]]
    path = workbook(tmp_path / "wide.xlsx", [row()], header=header)
    (message,) = problems_of(registry_import(file=path, filename=path.name))
    assert message.startswith(f"the header has values in more than {limit} columns")


def test_the_preview_stops_at_its_time_budget_and_offers_no_confirmation(
    client, admin_user, site_a, settings
):
    settings.IMPORT_PREVIEW_SECONDS = 0  # the budget is spent before the first check
    client.force_login(admin_user)
    rows = [row(study_id=f"T-{n:04d}") for n in range(600)]
    upload(client, "p.csv", csv_text(rows).encode())
    page = client.get(reverse("registry:import_preview")).content.decode()
    assert "could not be checked within 0 seconds (stopped at row " in page
    assert "manage.py import_registry" in page
    assert 'value="confirm"' not in page
    client.post(reverse("registry:import_confirm"), {"action": "confirm"})
    assert not Patient.objects.exists()


def test_a_workbook_is_read_within_the_time_budget_too(site_a, tmp_path, monkeypatch):
    limits = importer.Limits.from_settings(seconds=1)
    path = one_row_workbook(tmp_path / "slow.xlsx", 1_500_000)
    with pytest.raises(importer.OverBudget):
        importer.read_table(path, path.name, limits)


# --- what the page shows ------------------------------------------------------------------


def test_the_preview_lists_the_first_200_problems_with_their_count(client, admin_user, site_a):
    client.force_login(admin_user)
    rows = [row(study_id=f"T-{n:04d}", age_years=17) for n in range(450)]
    upload(client, "p.csv", csv_text(rows).encode())
    response = client.get(reverse("registry:import_preview"))
    page = response.content.decode()
    assert "450 problems in 450 rows" in page
    assert "The first 200 are listed." in page
    assert page.count('<li class="list-group-item') == 200
    assert len(response.content) < 200_000


def test_checking_stops_after_the_problem_limit(site_a, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "PROBLEM_LIMIT", 50)
    rows = [row(study_id=f"T-{n:04d}", age_years=17) for n in range(80)]  # one problem each
    result = registry_import(file=write_csv(tmp_path, rows), filename="p.csv")
    first, *others = problems_of(result)
    assert first.startswith("checking stopped at row 51 after 50 problems")
    assert len(others) == 50


def test_reloading_the_preview_of_a_refused_file_does_not_check_it_again(
    client, admin_user, site_a, monkeypatch
):
    client.force_login(admin_user)
    upload(client, "p.csv", csv_text([row(age_years=17)]).encode())
    from registry.interchange import views

    calls = []
    real = views.registry_import
    monkeypatch.setattr(views, "registry_import", lambda **kw: calls.append(kw) or real(**kw))
    for _ in range(3):
        page = client.get(reverse("registry:import_preview")).content.decode()
        assert "row 1, column age_years:" in page
    assert len(calls) == 1
    assert calls[0]["time_budget"] == 30  # IMPORT_PREVIEW_SECONDS


# --- control characters -------------------------------------------------------------------


def test_a_nul_byte_is_a_problem_of_its_cell_at_the_preview_and_nothing_fails_later(
    client, admin_user, site_a
):
    client.force_login(admin_user)
    content = csv_text([row(stent_device="Acclino\x00 4.0")]).encode()
    upload(client, "p.csv", content)
    page = client.get(reverse("registry:import_preview")).content.decode()
    assert (
        "row 1, column stent_device: contains the control character U+0000 (position 8), "
        "which cannot be stored; remove it." in page
    )
    assert 'value="confirm"' not in page
    response = client.post(reverse("registry:import_confirm"), {"action": "confirm"})
    assert response.status_code == 302
    assert not Procedure.objects.exists()


@pytest.mark.parametrize("character", ["\x01", "\x1b", "\x7f", "\x85"])
def test_other_control_characters_are_refused_and_tabs_and_line_ends_are_text(
    site_a, tmp_path, character
):
    path = write_csv(tmp_path, [row(stent_device=f"Acclino{character}4.0")])
    (message,) = problems_of(registry_import(file=path, filename=path.name))
    assert f"U+{ord(character):04X}" in message
    path = write_csv(tmp_path, [row(stent_device="Acclino\t4.0\nsecond line")])
    assert registry_import(file=path, filename=path.name).ok


def test_a_control_character_in_a_workbook_cell_is_refused_as_well(site_a, tmp_path):
    # XML allows DEL and the C1 controls (not NUL): a workbook can carry them.
    path = workbook(tmp_path / "p.xlsx", [row(stent_device="Acclino\x7f4.0")])
    (message,) = problems_of(registry_import(file=path, filename=path.name))
    assert "stent_device: contains the control character U+007F" in message


# --- the uploaded file --------------------------------------------------------------------


def test_the_upload_is_private_and_lives_in_a_private_folder(
    client, admin_user, site_a, private_upload_dir, settings
):
    os.umask(0o022)
    client.force_login(admin_user)
    upload(client, "p.csv", csv_text([row(age_years=17)]).encode())
    (path,) = [p for p in private_upload_dir.iterdir() if p.suffix == ".csv"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_upload_dir.stat().st_mode) == 0o700
    client.get(reverse("registry:import_preview"))  # the refusal is kept beside the file
    (preview,) = private_upload_dir.glob("*.preview.json")
    assert stat.S_IMODE(preview.stat().st_mode) == 0o600


def test_the_default_upload_folder_is_served_by_nothing():
    from config import settings  # the configured values, not the tests' override

    folder = os.path.realpath(settings.IMPORT_UPLOAD_DIR)
    served = [settings.STATIC_ROOT, *settings.STATICFILES_DIRS]
    served += [getattr(settings, "MEDIA_ROOT", "") or "/nonexistent"]
    for root in served:
        assert not folder.startswith(os.path.realpath(root) + os.sep)
    assert folder.startswith(os.path.realpath(settings.VAR_DIR))


def test_signing_out_deletes_the_pending_upload(client, admin_user, site_a, private_upload_dir):
    client.force_login(admin_user)
    upload(client, "p.csv", csv_text([row()]).encode())
    client.get(reverse("registry:import_preview"))
    assert list(private_upload_dir.iterdir())
    client.post(reverse("logout"))
    assert list(private_upload_dir.iterdir()) == []


def test_a_failing_confirmation_leaves_no_file_behind(
    admin_user, site_a, private_upload_dir, monkeypatch
):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    upload(client, "p.csv", csv_text([row()]).encode())
    preview = client.get(reverse("registry:import_preview"))

    def fail(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(importer._Run, "write", fail)
    response = client.post(reverse("registry:import_confirm"), confirmation(preview))
    assert response.status_code == 500
    assert list(private_upload_dir.iterdir()) == []


def test_uploads_older_than_a_day_are_purged_by_the_command_and_by_each_upload(
    client, admin_user, site_a, private_upload_dir, capsys
):
    client.force_login(admin_user)
    upload(client, "p.csv", csv_text([row()]).encode())
    (stale,) = list(private_upload_dir.iterdir())
    day_old = time.time() - 25 * 3600
    os.utime(stale, (day_old, day_old))
    call_command("purge_import_uploads")
    assert "1 file(s) deleted" in capsys.readouterr().out
    assert not stale.exists()

    forgotten = private_upload_dir / ("0" * 32 + ".csv")
    forgotten.write_text("study_id\n")
    os.utime(forgotten, (day_old, day_old))
    Client().force_login(admin_user)
    other = Client()
    other.force_login(admin_user)
    upload(other, "q.csv", csv_text([row()]).encode())
    assert not forgotten.exists()
    assert len(list(private_upload_dir.iterdir())) == 1
