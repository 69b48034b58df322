"""The CSV export written by PostgreSQL (``COPY ... TO STDOUT``) is byte for byte the CSV
the Python writer gives, identifiable and de-identified, on the demo cohort and on a
drawn cohort carrying every awkward value a cell can hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from registry.interchange import exporter
from registry.interchange.exporter import registry_export
from registry.interchange.redcap import redcap_export
from registry.models import Patient

from .drawn_cohort import awkward_cohort

# COPY is PostgreSQL's; these tests run in CI's PostgreSQL pass (DATABASE_URL=postgres://...).
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's COPY"),
]
GOLDEN = Path(__file__).parent / "reference" / "demo_export.csv"


@pytest.fixture
def fixed_key(monkeypatch):
    """The de-identified order's key, the same for both writers of one comparison."""
    monkeypatch.setattr(exporter.secrets, "token_hex", lambda n: "5e" * n)


def both_writers(*, deidentified: bool, site=None) -> tuple[bytes, bytes]:
    export = registry_export(user=None, fmt="csv", deidentified=deidentified, site=site)
    by_server = b"".join(export.chunks(by_server=True))
    by_python = b"".join(export.chunks(by_server=False))
    return by_server, by_python


def test_the_demo_cohort_copied_by_the_server_is_the_reference_file():
    call_command("seed_demo")
    export = registry_export(user=None, fmt="csv", deidentified=False)
    assert b"".join(export.chunks()) == GOLDEN.read_bytes()


def test_the_demo_cohort_deidentified_is_the_same_from_the_server_and_from_python(fixed_key):
    call_command("seed_demo")
    by_server, by_python = both_writers(deidentified=True)
    assert by_server.startswith(b"pseudo_id,site,")
    assert by_server == by_python


def test_an_awkward_identifiable_cohort_is_the_same_from_the_server_and_from_python():
    awkward_cohort()
    by_server, by_python = both_writers(deidentified=False)
    assert by_server.count(b"\n") > 120
    assert "Nguyễn".encode() in by_server
    assert by_server == by_python


def test_an_awkward_deidentified_cohort_is_the_same_from_the_server_and_from_python(fixed_key):
    awkward_cohort()
    by_server, by_python = both_writers(deidentified=True)
    assert by_server.startswith(b"pseudo_id,")
    assert by_server == by_python


def test_one_sites_export_from_the_server_has_only_that_sites_patients(fixed_key):
    awkward_cohort()
    site = Patient.objects.order_by("pk").first().site
    by_server, by_python = both_writers(deidentified=True, site=site)
    assert by_server.count(b"\n") == 1 + Patient.objects.filter(site=site).count()
    assert by_server == by_python


def both_redcap_writers(*, deidentified: bool) -> tuple[bytes, bytes]:
    export = redcap_export(user=None, deidentified=deidentified)
    by_server = b"".join(export.chunks(by_server=True))
    by_python = b"".join(export.chunks(by_server=False))
    return by_server, by_python


@pytest.mark.parametrize("deidentified", [False, True], ids=["identifiable", "de-identified"])
def test_the_demo_redcap_records_are_the_same_from_the_server_and_from_python(
    fixed_key, deidentified
):
    call_command("seed_demo")
    by_server, by_python = both_redcap_writers(deidentified=deidentified)
    assert by_server.count(b"\n") == 1 + Patient.objects.count()
    assert b"_complete" in by_server.split(b"\n", 1)[0]
    assert by_server == by_python


@pytest.mark.parametrize("deidentified", [False, True], ids=["identifiable", "de-identified"])
def test_awkward_redcap_records_are_the_same_from_the_server_and_from_python(
    fixed_key, deidentified
):
    awkward_cohort()
    by_server, by_python = both_redcap_writers(deidentified=deidentified)
    assert by_server.count(b"\n") > 120
    assert by_server == by_python


def test_redcap_records_on_postgresql_are_written_by_the_server(django_assert_num_queries):
    awkward_cohort()
    export = redcap_export(user=None, deidentified=False)
    with django_assert_num_queries(1) as queries:
        b"".join(export.chunks())
    assert queries.captured_queries[0]["sql"].startswith("COPY (")
