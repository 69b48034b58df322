"""Property-based tests (hypothesis): bad input never causes a 500 or a partial write.

Every section form is posted with arbitrary strings, out-of-range numbers, wrong types,
odd Unicode and huge values; the import parser gets mutated rows and arbitrary bytes.
A rejection must name the field (form) or the column/row (import) and leave the
database exactly as it was. Example counts are kept modest so `make test` stays fast.
"""

from __future__ import annotations

import csv
import io

from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from registry.choices import Role
from registry.interchange import columns as interchange
from registry.interchange import importer
from registry.models import SECTION_MODELS, Patient

from .factories import SiteFactory, UserFactory, full_patient

FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"),
    ),
    max_size=60,
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["-1", "43", "101", "6.5", "1e9", "0x10", "٣", "１２", "NaN", " 7 "]),
)
DATES = st.one_of(
    st.sampled_from(
        [
            "2020-02-30",
            "2020-13-01",
            "0000-01-01",
            "9999-12-31T23:59",
            "2020-06-01T25:61",
            "2020-06-01T08:00",
            "1900-01-01",
            "yesterday",
        ]
    ),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M")),
)
HUGE = st.sampled_from(["x" * 100_000, "9" * 5_000, "é" * 20_000, "\x00" * 10, "A\x00B"])
VALUES = st.one_of(ODD_TEXT, NUMBERS, DATES, HUGE, st.sampled_from(["", "True", "False", "3"]))


def snapshot(patient_pk: int) -> dict:
    """Every stored value of the patient, all sections (and their versions)."""
    patient = Patient.objects.get(pk=patient_pk)
    out = {"patient": (patient.study_id, patient.sex, patient.age_years)}
    for model in SECTION_MODELS:
        row = model.objects.filter(pk=patient_pk).values().first()
        out[model.key] = row and {k: v for k, v in row.items() if k != "updated_at"}
    return out


class SectionFormsFuzz(TestCase):
    @classmethod
    def setUpTestData(cls):
        site = SiteFactory(code="A", name="Site A")
        cls.nurse = UserFactory(username="fuzz_nurse", role=Role.DATA_ENTRY, sites=[site])
        cls.patient_pk = full_patient(study_id="FZ-0001", site=site).pk

    def post_section(self, model, values: dict, action: str, version: str | None):
        client = Client(raise_request_exception=False)
        client.force_login(self.nurse)
        stored = model.objects.get(pk=self.patient_pk)
        data = {"version": str(stored.version) if version is None else version, "action": action}
        data.update(values)
        if action == "complete" or stored.status == "complete":
            data["reason_for_change"] = "fuzz"
        before = snapshot(self.patient_pk)
        url = reverse(
            "registry:section_edit", kwargs={"pk": self.patient_pk, "section_key": model.key}
        )
        response = client.post(url, data)
        where = f"{model.key} {values!r:.300}"
        assert response.status_code in (200, 302), f"{response.status_code} for {where}"
        after = snapshot(self.patient_pk)
        others = {k: v for k, v in after.items() if k != model.key}
        assert others == {k: v for k, v in before.items() if k != model.key}, where
        if response.status_code == 200:
            form = response.context["form"]
            assert form.errors, f"refused without an error: {where}"
            # A stale version is about the whole section (someone else saved): the only
            # refusal allowed not to name a field.
            unnamed = [
                k
                for k, errors in form.errors.as_data().items()
                if k not in form.fields and any(e.code != "stale_version" for e in errors)
            ]
            assert unnamed == [], f"rejection names no field: {form.errors} for {where}"
            assert after == before, f"partial write on a refused save: {where}"
        else:
            saved = after[model.key]
            unchanged = saved == before[model.key]
            assert unchanged or saved["version"] == before[model.key]["version"] + 1, where

    def fuzz(self, model, data):
        fields = model.clinical_fields()
        chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, unique=True))
        stored = model.objects.get(pk=self.patient_pk)
        values = {
            name: (data.draw(VALUES) if name in chosen else _as_posted(getattr(stored, name)))
            for name in fields
        }
        action = data.draw(st.sampled_from(["save", "complete", "", "🙂"]))
        version = data.draw(st.one_of(st.none(), st.none(), NUMBERS, ODD_TEXT))
        self.post_section(model, values, action, version)


def csv_bytes(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def _as_posted(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%dT%H:%M" if hasattr(value, "hour") else "%Y-%m-%d")
    return str(value)


def _section_test(model):
    @FUZZ
    @given(data=st.data())
    def test(self, data):
        self.fuzz(model, data)

    test.__name__ = f"test_{model.key}_form_never_fails_or_half_saves_on_bad_input"
    return test


for _model in SECTION_MODELS:
    _test = _section_test(_model)
    setattr(SectionFormsFuzz, _test.__name__, _test)


class ImportParserFuzz(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.site = SiteFactory(code="A", name="Site A")
        cls.admin = UserFactory(username="fuzz_admin", role=Role.ADMIN)
        template = full_patient(study_id="TEMPLATE-1", site=cls.site)
        cls.template_pk = template.pk
        values = template.flat_values()
        cls.columns = interchange.columns()
        cls.valid_row = [
            interchange.format_value(column, values.get(column.name), neutralise=False)
            for column in cls.columns
        ]

    def run_import(self, payload: bytes, filename="fuzz.csv"):
        before = Patient.objects.count()
        result = importer.registry_import(
            file=io.BytesIO(payload), user=self.admin, filename=filename, create_sites=False
        )
        if result.problems:
            assert Patient.objects.count() == before, "partial write on a refused import"
            for problem in result.problems:
                whole_file = problem.row is None and "file" in problem.message
                assert problem.columns or problem.row is not None or whole_file, problem
        return result

    @FUZZ
    @given(data=st.data())
    def test_mutated_rows_are_imported_whole_or_refused_naming_the_column(self, data):
        names = [c.name for c in self.columns]
        rows = []
        for n in range(data.draw(st.integers(min_value=1, max_value=3))):
            row = list(self.valid_row)
            row[names.index("study_id")] = f"FZ-{n}"
            for index in data.draw(st.lists(st.integers(0, len(row) - 1), max_size=4)):
                row[index] = data.draw(VALUES)
            rows.append(row)
        result = self.run_import(csv_bytes([names, *rows]))
        ids = [row[names.index("study_id")] for row in rows]
        if result.problems:
            assert not Patient.objects.filter(study_id__in=ids).exclude(pk=self.template_pk)
        else:
            untouched = [i for i in ids if i.startswith("FZ-")]
            assert Patient.objects.filter(study_id__in=untouched).count() == len(untouched)

    @FUZZ
    @given(payload=st.one_of(st.binary(max_size=2000), ODD_TEXT.map(str.encode)))
    def test_arbitrary_bytes_are_refused_with_a_problem_never_an_exception(self, payload):
        assert self.run_import(payload).problems

    def test_a_non_utf8_csv_a_fake_xlsx_or_a_huge_number_is_refused_with_a_problem(self):
        # Windows-1258 writes "nữ" as "nư" + a combining tilde (no precomposed letter).
        not_utf8 = (
            b"\xff\xfestudy_id",
            "study_id;sex\nA-1;n\u01b0\u0303".encode("cp1258"),
            "study_id\nHà Tiên".encode("cp1252"),
        )
        for payload in not_utf8:
            problems = [str(p) for p in self.run_import(payload).problems]
            assert problems == [importer.NOT_UTF8], payload
        problems = self.run_import(b"PK\x03\x04 not a workbook", filename="x.xlsx").problems
        assert [str(p) for p in problems] == [importer.NOT_XLSX]
        names = [c.name for c in self.columns]
        row = list(self.valid_row)
        row[names.index("age_years")] = "9" * 5000  # int() refuses > 4300 digits
        problems = self.run_import(csv_bytes([names, row])).problems
        assert {(p.row, p.columns) for p in problems} == {(1, ("age_years",))}
        assert any("must be a whole number between 18 and 120" in p.message for p in problems)
