"""The synthetic demo cohort: deterministic, valid, and shaped exactly like the study.

Expected counts come from the paper (shared/study/rescue-intracranial-stenting-paper.txt):
Results (baseline, complications, outcomes), Table I (poor outcomes among the exposed),
Table II (3 T MRI x DSA), Table IV (SWI clot x MT) and the Discussion (recanalization
82/85, rTPA 8, deaths 16 = 18.8%). Counts are compared exactly.
"""

import pytest
from django.core.management import call_command
from django.db.models import Count, Q

from registry import demo
from registry.choices import Role, SectionStatus
from registry.derived import annotate_derived
from registry.interchange.exporter import registry_export
from registry.models import Patient, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(db, capsys):
    call_command("seed_demo")
    return capsys.readouterr().out


def test_two_generations_give_the_same_rows():
    assert demo.cohort_rows() == demo.cohort_rows()


def test_seeding_twice_reuses_everything_and_gives_the_same_data(seeded, capsys):
    first = registry_export(user=None, fmt="csv", deidentified=False).content
    call_command("seed_demo")
    assert "0 patients created, 85 reused" in capsys.readouterr().out
    assert registry_export(user=None, fmt="csv", deidentified=False).content == first
    assert Patient.objects.count() == 85
    assert User.objects.count() == len(Role)


def test_an_edited_demo_patient_is_reused_as_it_is(seeded, capsys):
    Patient.objects.filter(study_id="DEMO-002").delete()
    Patient.objects.filter(study_id="DEMO-001").update(age_years=99)
    call_command("seed_demo")
    assert "1 patients created, 84 reused" in capsys.readouterr().out
    assert Patient.objects.get(study_id="DEMO-001").age_years == 99
    assert Patient.objects.filter(study_id="DEMO-002").exists()


def test_the_command_says_the_cohort_is_synthetic_and_prints_the_demo_logins(seeded):
    assert "SYNTHETIC" in seeded
    for username, _, password in (
        ("nurse", None, "demo-nurse-2021"),
        ("admin", None, "demo-admin-2021"),
    ):
        assert username in seeded and password in seeded


def test_there_is_one_user_per_role_and_the_admin_can_use_the_django_admin(seeded):
    users = {u.role: u for u in User.objects.all()}
    assert set(users) == set(Role.values)
    assert users[Role.ADMIN].is_staff and users[Role.ADMIN].is_superuser
    assert User.objects.get(username="nurse").check_password("demo-nurse-2021")
    assert all(u.sites.filter(code="SIS").exists() for u in users.values())


def test_study_ids_are_labelled_as_demo(seeded):
    ids = list(Patient.objects.values_list("study_id", flat=True))
    assert ids == [f"DEMO-{n:03d}" for n in range(1, 86)]
    assert set(Patient.objects.values_list("site__code", flat=True)) == {"SIS"}


def test_every_record_is_valid_and_every_section_complete(seeded):
    for patient in Patient.objects.all():
        patient.full_clean()
        for section in patient.sections().values():
            assert section.status == SectionStatus.COMPLETE
            section.full_clean()


def count(**filters) -> int:
    return annotate_derived(Patient.objects.all()).filter(**filters).count()


BASELINE = {
    # Results: ages 28-101, 27.1% >= 70, 70.6% men, 50.6% onset-to-door > 6 h, ...
    "age_70_plus": ({"age_70_plus": True}, 23),
    "men": ({"sex": "male"}, 60),
    "onset_over_6h": ({"onset_over_6h": True}, 43),
    "hypertension": ({"admission__hypertension": True}, 85),
    "smoking": ({"admission__smoking": True}, 40),
    "diabetes": ({"admission__diabetes": True}, 39),
    "myocardial_infarction": ({"admission__myocardial_infarction": True}, 30),
    "posterior": ({"imaging__circulation": "posterior"}, 23),
    "self_expanding": ({"procedure__stent_type": "self_expanding"}, 24),
    "only_ris": ({"only_ris": True}, 39),
    # Complications 15.3% (13): new infarcts 3.5%, ICH 10.6%, metabolic acidosis 1.2%.
    "new_infarct": ({"complications__new_infarct": True}, 3),
    "ich": ({"complications__ich": True}, 9),
    "sich": ({"complications__sich": True}, 4),
    "metabolic_acidosis": ({"complications__metabolic_acidosis": True}, 1),
    "decompressive_craniectomy": ({"complications__decompressive_craniectomy": True}, 3),
    "any_complication": ({"any_complication": True}, 13),
    # All pre-procedural mRS 5; non-poor 20% at discharge, 55.3% at 3 months.
    "admission_mrs_5": ({"admission__admission_mrs": 5}, 85),
    "non_poor_discharge": ({"complications__discharge_mrs__lte": 3}, 17),
    "non_poor_3m": ({"non_poor_3m": True}, 47),
    "dead_3m": ({"death_3m": True}, 16),
    "iv_thrombolysis": ({"admission__iv_thrombolysis": True}, 8),
    "recanalized": ({"recanalized": True}, 82),
}


@pytest.mark.parametrize("name", sorted(BASELINE))
def test_the_cohort_matches_the_published_count(seeded, name):
    filters, expected = BASELINE[name]
    assert count(**filters) == expected == demo.TARGETS[name]


def test_ages_range_from_28_to_101(seeded):
    ages = list(Patient.objects.values_list("age_years", flat=True))
    assert (min(ages), max(ages)) == (28, 101)
    assert round(sum(ages) / len(ages), 1) == 63.1


def test_table_ii_cells_are_exact(seeded):
    cells = _cells("procedure__dsa_diagnosis", "imaging__mri_diagnosis")
    assert cells == demo.TARGETS["table2"]
    false_negative = Patient.objects.get(
        procedure__dsa_diagnosis="occlusion", imaging__mri_diagnosis="stenosis"
    )
    assert false_negative.imaging.circulation == "posterior"


def _cells(a: str, b: str) -> dict:
    rows = Patient.objects.order_by().values(a, b).annotate(n=Count("pk"))
    return {(r[a], r[b]): r["n"] for r in rows}


def test_table_iv_cells_are_exact(seeded):
    assert _cells("procedure__mt_performed", "imaging__swi_clot") == demo.TARGETS["table4"]


# Table I: poor outcomes (mRS 4-6 at 3 months) among the exposed.
TABLE_I_POOR = {
    "age >= 70": ({"age_70_plus": True}, 16),
    "women": ({"sex": "female"}, 15),
    "smoking": ({"admission__smoking": True}, 23),
    "hypertension": ({"admission__hypertension": True}, 38),
    "AF": ({"admission__atrial_fibrillation": True}, 1),
    "CKD": ({"admission__chronic_kidney_disease": True}, 5),
    "diabetes": ({"admission__diabetes": True}, 21),
    "myocardial infarction": ({"admission__myocardial_infarction": True}, 14),
    "rTPA": ({"admission__iv_thrombolysis": True}, 3),
    "DAPT": ({"procedure__dapt_loading": True}, 38),
    "onset over 6 hours": ({"onset_over_6h": True}, 24),
    "dysphagia": ({"admission__dysphagia": True}, 13),
    "DWI-ASPECTS < 8": ({"dwi_aspects_lt8": True}, 15),
    "pc-ASPECTS < 6": ({"pc_aspects_lt6": True}, 8),
    "posterior circulation": ({"imaging__circulation": "posterior"}, 15),
    "sedation": ({"procedure__anesthesia": "sedation"}, 1),
    "only RIS": ({"only_ris": True}, 17),
    "procedure > 60 minutes": ({"procedure_over_60min": True}, 32),
    "new infarcts": ({"complications__new_infarct": True}, 2),
    "sICH": ({"complications__sich": True}, 4),
    "decompressive craniectomy": ({"complications__decompressive_craniectomy": True}, 3),
    "lack of rehabilitation": ({"followup__rehabilitation": False}, 7),
}


@pytest.mark.parametrize("exposure", sorted(TABLE_I_POOR))
def test_table_i_poor_outcomes_among_the_exposed_match(seeded, exposure):
    filters, expected = TABLE_I_POOR[exposure]
    assert count(poor_outcome_3m=True, **filters) == expected


def test_sich_splits_3_of_62_anterior_and_1_of_23_posterior(seeded):
    by_circulation = _cells("imaging__circulation", "complications__sich")
    assert by_circulation[("anterior", True)] == 3
    assert by_circulation[("posterior", True)] == 1


def test_no_rtpa_patient_had_an_ich(seeded):
    assert not count(admission__iv_thrombolysis=True, complications__ich=True)


def test_deaths_split_7_of_62_anterior(seeded):
    assert count(death_3m=True, imaging__circulation="anterior") == 7
    assert (
        Patient.objects.filter(Q(followup__mrs_3m=6) & Q(complications__discharge_mrs=6)).count()
        == 3
    )  # 13 died between discharge and 3 months
