"""Data freezes: the study tables, quality indicators and exports reproduced from a
freeze however the registry changes afterwards, the comparison, access and audit."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction
from django.urls import reverse

from analytics.quality import quality_indicators
from analytics.tables import add_provenance, strip_internal, study_tables
from registry import freezes
from registry.choices import Role
from registry.interchange.exporter import registry_export
from registry.models import (
    SECTION_MODELS,
    Admission,
    DataFreeze,
    ExportLog,
    FollowUp,
    FreezeDeletion,
    FreezeImmutable,
    Patient,
    patients_sections_written,
)

from .analytics_cohort import build_cohort
from .factories import UserFactory


@pytest.fixture(autouse=True)
def freeze_cache(tmp_path, settings):
    settings.FREEZE_CACHE_DIR = str(tmp_path / "freeze-cache")


@pytest.fixture
def cohort(site_a, site_b):
    return build_cohort(site_a, site_b)


@pytest.fixture
def frozen(cohort, admin_user):
    return freezes.freeze_create(name="submission-1", reason="manuscript", user=admin_user)


def tables_json(freeze=None) -> str:
    result = add_provenance(strip_internal(study_tables(None, freeze=freeze)))
    result.pop("generated_at")
    return json.dumps(result, sort_keys=True)


def change_three_values_and_delete_a_patient(cohort) -> None:
    """A-01's 3-month mRS, B-01's NIHSS and A-02's age change; A-03 is deleted."""
    followup = FollowUp.objects.get(patient=cohort["A-01"])
    FollowUp.objects.filter(pk=followup.pk).update(mrs_3m=(followup.mrs_3m + 1) % 6)
    admission = Admission.objects.get(patient=cohort["B-01"])
    Admission.objects.filter(pk=admission.pk).update(nihss_admission=admission.nihss_admission + 1)
    Patient.objects.filter(pk=cohort["A-02"].pk).update(age_years=40)
    patients_sections_written(patient_ids=None)
    for model in SECTION_MODELS:
        model.objects.filter(patient=cohort["A-03"]).delete()
    cohort["A-03"].delete()


def test_the_tables_from_a_freeze_stay_the_same_and_the_comparison_lists_the_four_changes(
    cohort, frozen
):
    before = tables_json(frozen)
    live_before = tables_json()
    change_three_values_and_delete_a_patient(cohort)

    assert tables_json(frozen) == before
    assert tables_json() != live_before
    comparison = freezes.freeze_compare(freeze=frozen)
    assert comparison.added == []
    assert comparison.removed == ["A-03"]
    changed = {(c.study_id, c.column, c.before, c.after) for c in comparison.changes}
    assert {(s, c) for s, c, _b, _a in changed} == {
        ("A-01", "mrs_3m"),
        ("B-01", "nihss_admission"),
        ("A-02", "age_years"),
    }
    assert ("A-02", "age_years", str(cohort["A-02"].age_years), "40") in changed


def test_a_comparison_of_rows_not_in_python_order_lists_the_same_differences(
    cohort, frozen, monkeypatch
):
    """Study IDs ordered by a database collation unlike Python's cannot be merged:
    they are compared by digest, with the same differences."""
    change_three_values_and_delete_a_patient(cohort)
    merged = freezes.freeze_compare(freeze=frozen)
    read = freezes.freeze_text_rows

    def reversed_rows(*, freeze):
        rows = read(freeze=freeze)
        return iter([next(rows), *reversed(list(rows))])

    monkeypatch.setattr(freezes, "freeze_text_rows", reversed_rows)
    by_digest = freezes.freeze_compare(freeze=frozen)
    assert merged.n_differences == 4
    assert (by_digest.added, by_digest.removed) == (merged.added, merged.removed)
    assert by_digest.changes == merged.changes


def test_the_hash_is_the_sha256_of_the_stored_rows_which_are_the_identifiable_export(
    cohort, frozen
):
    rows = gzip.decompress(bytes(frozen.rows_gz))
    assert hashlib.sha256(rows).hexdigest() == frozen.sha256
    export = registry_export(user=None, fmt="csv", deidentified=False)
    assert rows == export.content
    assert b"".join(freezes.freeze_csv(freeze=frozen)) == rows
    assert frozen.n_patients == len(cohort)
    assert frozen.site_codes == ["A", "B"]


def test_a_tampered_freeze_is_refused_with_a_message_naming_it(cohort, frozen):
    tampered = DataFreeze.objects.get(pk=frozen.pk)
    text = gzip.decompress(bytes(tampered.rows_gz)).replace(b"A-01", b"A-99")
    tampered.rows_gz = gzip.compress(text)
    with pytest.raises(freezes.FreezeTampered, match="submission-1.*SHA-256"):
        study_tables(None, freeze=tampered)
    with pytest.raises(freezes.FreezeTampered):
        b"".join(freezes.freeze_csv(freeze=tampered))


def test_a_stored_freeze_cannot_be_changed_by_save_nor_by_the_database(frozen):
    frozen.reason = "another reason"
    with pytest.raises(FreezeImmutable):
        frozen.save()
    with pytest.raises(DatabaseError), transaction.atomic():
        DataFreeze.objects.filter(pk=frozen.pk).update(reason="another reason")
    assert DataFreeze.objects.get(pk=frozen.pk).reason == "manuscript"


def test_freeze_names_are_unique_and_a_reason_is_required(frozen, admin_user):
    with pytest.raises(ValidationError) as error:
        freezes.freeze_create(name="submission-1", reason="again", user=admin_user)
    assert "name" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        freezes.freeze_create(name="submission-2", reason=" ", user=admin_user)
    assert "reason" in error.value.message_dict


def test_a_site_investigator_freezes_and_sees_only_his_sites_freezes(
    cohort, frozen, investigator, site_b
):
    own = freezes.freeze_create(name="site-a", reason="abstract", user=investigator)
    assert own.site_codes == ["A"]
    assert list(freezes.freezes_for(investigator)) == [own]  # not the one holding site B
    with pytest.raises(PermissionDenied):
        freezes.freeze_create(name="site-b", reason="x", user=investigator, site=site_b)


def test_a_freeze_compared_with_another_lists_the_patients_added(cohort, frozen, site_a):
    from .analytics_cohort import make_patient

    make_patient(site_a, study_id="A-50")
    later = freezes.freeze_create(name="submission-2", reason="revision", user=None)
    comparison = freezes.freeze_compare(freeze=frozen, other=later)
    assert (comparison.added, comparison.removed, comparison.changes) == (["A-50"], [], [])


def test_only_the_registry_administrator_deletes_a_freeze_and_the_audit_outlives_it(
    frozen, admin_user, investigator
):
    site_admin = UserFactory(username="site_admin", role=Role.SITE_ADMIN)
    for user in (investigator, site_admin):
        with pytest.raises(PermissionDenied):
            freezes.freeze_delete(freeze=frozen, user=user, reason="mistake")
    with pytest.raises(ValidationError):
        freezes.freeze_delete(freeze=frozen, user=admin_user, reason="")
    freezes.freeze_delete(freeze=frozen, user=admin_user, reason="made by mistake")
    assert not DataFreeze.objects.exists()
    audit = FreezeDeletion.objects.get()
    assert (audit.name, audit.sha256, audit.deleted_by, audit.reason) == (
        "submission-1",
        frozen.sha256,
        admin_user,
        "made by mistake",
    )


def test_a_freezes_database_built_for_other_tables_is_built_again(frozen, tmp_path, monkeypatch):
    freezes.freeze_database(freeze=frozen)
    monkeypatch.setattr(freezes, "cache_layout", lambda: "an-older-one")
    freezes.freeze_database(freeze=frozen)
    built = sorted(p.name for p in (tmp_path / "freeze-cache").iterdir())
    assert len(built) == 2 and built[0].startswith(frozen.sha256)
    assert f"{frozen.sha256}-an-older-one.sqlite3" in built


def test_quality_indicators_from_a_new_freeze_are_those_of_the_live_registry(cohort, frozen):
    # The freeze's own database keeps each patient's quality facts as the registry does.
    from_freeze = quality_indicators(None, freeze=frozen)
    assert from_freeze.pop("freeze")["sha256"] == frozen.sha256
    live = quality_indicators(None)
    assert from_freeze == live
    assert any(row.get("denominator") for row in live["rows"] if row["kind"] == "rate")


def test_quality_indicators_from_a_freeze_stay_the_same(cohort, frozen):
    before = quality_indicators(None, freeze=frozen)
    change_three_values_and_delete_a_patient(cohort)
    assert quality_indicators(None, freeze=frozen) == before
    assert before["freeze"]["sha256"] == frozen.sha256


def test_the_commands_freeze_compare_and_compute_from_a_freeze(cohort, tmp_path):
    out = io.StringIO()
    call_command("freeze_registry", "paper", "--reason", "manuscript", stdout=out)
    freeze = DataFreeze.objects.get(name="paper")
    assert freeze.sha256 in out.getvalue()
    with pytest.raises(CommandError, match="name"):
        call_command("freeze_registry", "paper", "--reason", "again")
    change_three_values_and_delete_a_patient(cohort)

    out = io.StringIO()
    call_command("freeze_registry", "--compare", "paper", stdout=out)
    assert "removed\tA-03" in out.getvalue()
    assert "1 removed, 3 values changed" in out.getvalue()

    out = io.StringIO()
    call_command("study_tables", "--freeze", "paper", stdout=out)
    result = json.loads(out.getvalue())
    assert result["freeze"]["sha256"] == freeze.sha256
    assert result["data_as_of"] == result["freeze"]["created_at"]

    out = io.StringIO()
    call_command("quality_indicators", "--freeze", "paper", stdout=out)
    assert json.loads(out.getvalue())["freeze"]["name"] == "paper"

    exported = tmp_path / "export.csv"
    call_command("export_registry", "--freeze", "paper", "--output", str(exported))
    assert exported.read_bytes() == b"".join(freezes.freeze_csv(freeze=freeze))
    assert ExportLog.objects.get().filters["freeze"]["sha256"] == freeze.sha256
    with pytest.raises(CommandError, match="no data freeze named 'nope'"):
        call_command("study_tables", "--freeze", "nope")


def test_the_word_report_from_a_freeze_names_it(cohort, frozen, tmp_path):
    from docx import Document

    path = tmp_path / "report.docx"
    call_command("study_report", "--freeze", frozen.name, "--output", str(path))
    text = "\n".join(p.text for p in Document(str(path)).paragraphs)
    assert frozen.sha256 in text and frozen.name in text


def test_a_de_identified_export_of_a_freeze_keeps_its_patients_without_study_ids(cohort, frozen):
    export = registry_export(user=None, fmt="csv", deidentified=True, freeze=frozen)
    text = export.content.decode()
    assert text.count("\n") == len(cohort) + 1
    assert "A-01" not in text


def test_the_pages_list_create_compare_download_and_delete_freezes(
    cohort, frozen, client, admin_user, investigator
):
    client.force_login(investigator)
    listed = client.get(reverse("registry:freeze_list"))
    assert frozen.name not in listed.content.decode()  # it holds site B's rows
    created = client.post(
        reverse("registry:freeze_list"), {"name": "abstract-a", "reason": "congress"}
    )
    assert created.status_code == 302
    mine = DataFreeze.objects.get(name="abstract-a")
    assert mine.sha256 in client.get(reverse("registry:freeze_list")).content.decode()
    refused = client.post(reverse("registry:freeze_list"), {"name": "abstract-a", "reason": "x"})
    assert "already exists" in refused.content.decode()

    client.force_login(admin_user)
    change_three_values_and_delete_a_patient(cohort)
    detail = client.get(reverse("registry:freeze_detail", args=[frozen.name]))
    assert detail.context["comparison"].removed == ["A-03"]
    assert len(detail.context["changes"]) == 3
    download = client.get(reverse("registry:freeze_download", args=[frozen.name]))
    assert b"".join(download.streaming_content) == gzip.decompress(bytes(frozen.rows_gz))
    report = client.get(reverse("analytics:report") + f"?freeze={frozen.name}")
    assert frozen.sha256 in report.content.decode()
    assert report.context["result"]["freeze"]["name"] == frozen.name

    deleted = client.post(
        reverse("registry:freeze_delete", args=[frozen.name]), {"reason": "duplicate"}
    )
    assert deleted.status_code == 302
    assert FreezeDeletion.objects.get().name == frozen.name


def test_a_freeze_larger_than_one_read_is_read_back_whole_and_equal_to_the_live_data(site_a):
    from .analytics_cohort import bulk_cohort

    bulk_cohort(site_a, 1500)
    freeze = freezes.freeze_create(name="large", reason="size", user=None)
    assert len(gzip.decompress(bytes(freeze.rows_gz))) > freezes.PIECE_BYTES
    assert sum(1 for _row in freezes.freeze_typed_rows(freeze=freeze)) == 1500
    assert freezes.freeze_compare(freeze=freeze).n_differences == 0


def test_the_quality_page_of_each_freeze_shows_that_freezes_numbers_not_a_remembered_one(
    cohort, frozen, client, admin_user
):
    client.force_login(admin_user)
    url = reverse("quality:page")
    first = client.get(url, {"freeze": frozen.name}).context["tables"]
    change_three_values_and_delete_a_patient(cohort)
    later = freezes.freeze_create(name="submission-2", reason="revision", user=admin_user)

    assert client.get(url, {"freeze": frozen.name}).context["tables"] == first
    second = client.get(url, {"freeze": later.name}).context["tables"]
    assert second != first
    assert second == client.get(url).context["tables"]


def test_a_freeze_of_a_range_of_door_dates_holds_those_patients_and_compares_with_the_same_range(
    cohort, admin_user
):
    import datetime as dt

    from django.utils import timezone

    early = Admission.objects.get(patient=cohort["A-01"])
    shift = dt.timedelta(days=400)  # the onset moves with the door (a rule orders them)
    Admission.objects.filter(pk=early.pk).update(
        door_time=early.door_time - shift,
        onset_time=early.onset_time - shift if early.onset_time else None,
    )
    others = Admission.objects.exclude(pk=early.pk).exclude(door_time=None)
    first = min(timezone.localtime(a.door_time).date() for a in others)
    last = max(timezone.localtime(a.door_time).date() for a in others)

    freeze = freezes.freeze_create(
        name="door-range", reason="abstract", user=admin_user, date_from=first, date_to=last
    )
    frozen_ids = {row["study_id"] for row in freezes.freeze_typed_rows(freeze=freeze)}

    assert frozen_ids == {a.patient.study_id for a in others}
    assert "A-01" not in frozen_ids
    assert freeze.filters == {"site": None, "from": first.isoformat(), "to": last.isoformat()}
    assert freezes.freeze_compare(freeze=freeze).n_differences == 0


def test_a_freeze_whose_last_door_date_is_before_its_first_is_refused_naming_the_field(
    cohort, admin_user
):
    import datetime as dt

    with pytest.raises(ValidationError) as refused:
        freezes.freeze_create(
            name="backwards",
            reason="x",
            user=admin_user,
            date_from=dt.date(2021, 3, 1),
            date_to=dt.date(2021, 2, 1),
        )
    assert list(refused.value.message_dict) == ["date_to"]
    assert not DataFreeze.objects.filter(name="backwards").exists()


def test_the_command_freezes_a_range_of_door_dates(cohort):
    out = io.StringIO()
    call_command(
        "freeze_registry",
        "q1",
        "--reason",
        "r",
        "--from",
        "2000-01-01",
        "--to",
        "2100-12-31",
        stdout=out,
    )
    freeze = DataFreeze.objects.get(name="q1")
    assert freeze.filters["from"] == "2000-01-01" and freeze.filters["to"] == "2100-12-31"
    with pytest.raises(CommandError):
        call_command("freeze_registry", "q2", "--reason", "r", "--from", "1st of May")
