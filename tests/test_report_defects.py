"""The study tables' edge cases: no site, a full outcome column, a half percent, a
reversed date range, patients lost to follow-up and an empty regression cohort."""

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from analytics import figures, stats
from analytics.datasets import Filters
from analytics.tables import study_tables
from registry.choices import Role
from registry.models import PatientExclusionReason
from registry.workflow.services import patient_exclude

from .analytics_cohort import build_cohort, make_patient
from .factories import UserFactory

pytestmark = pytest.mark.django_db

REPORT_URLS = (
    reverse("analytics:report"),
    reverse("analytics:patients") + "?cell=table1:female:exposed_n",
    reverse("analytics:published"),
    reverse("analytics:download", args=["all", "json"]),
    reverse("analytics:download", args=["table1", "csv"]),
    reverse("analytics:download", args=["all", "xlsx"]),
    reverse("analytics:figure", args=["mrs", "svg"]),
    reverse("analytics:figure", args=["occlusion_sites", "png"]),
)


# -- an investigator with no site -----------------------------------------------------------


def test_an_investigator_without_a_site_sees_empty_tables_on_every_report_url(
    client, site_a, site_b
):
    build_cohort(site_a, site_b)
    client.force_login(UserFactory(username="no_site", role=Role.INVESTIGATOR))
    for url in REPORT_URLS:
        response = client.get(url)
        assert response.status_code == 200, url
    data = json.loads(client.get(reverse("analytics:download", args=["all", "json"])).content)
    assert data["n_patients"] == 0
    assert data["table1"]["n_analysed"] == 0


# -- a group where everyone has the outcome ------------------------------------------------


def test_a_full_outcome_column_gives_no_zero_width_intervals():
    result = stats.compare_risks(5, 5, 3, 3)
    assert result.rr is None and result.rr_ci is None
    assert result.rd == 0 and result.rd_ci is None
    assert "every patient" in result.note


def test_risks_of_zero_and_one_give_no_zero_width_risk_difference_interval():
    everyone_against_no_one = stats.compare_risks(4, 4, 0, 6)
    assert everyone_against_no_one.rd == 1.0
    assert everyone_against_no_one.rd_ci is None
    assert "RD CI not estimable" in everyone_against_no_one.note


def test_a_group_where_only_one_side_has_every_event_keeps_its_finite_interval():
    result = stats.compare_risks(5, 5, 2, 3)
    low, high = result.rr_ci
    assert low < result.rr < high
    assert result.rd_ci[0] < result.rd_ci[1]


# -- display rounding ------------------------------------------------------------------------


def test_grotta_labels_round_a_half_percent_up():
    # 1 of 8 patients is 12.5 %: printed "13%", as every other number of the report.
    svg = figures.render("mrs", {"outcomes": {"mrs": {"month3": [1, 7, 0, 0, 0, 0, 0]}}}, "svg")
    text = svg.decode()
    assert "13%" in text
    assert "12%" not in text


# -- a reversed date range -------------------------------------------------------------------


def test_the_command_refuses_a_from_date_after_the_to_date(site_a, site_b):
    build_cohort(site_a, site_b)
    with pytest.raises(CommandError) as raised:
        call_command("study_tables", "--from", "2021-02-01", "--to", "2021-01-01")
    assert "--from" in str(raised.value) and "--to" in str(raised.value)
    assert "2021-02-01" in str(raised.value) and "2021-01-01" in str(raised.value)


def test_the_report_shows_the_error_and_no_table_for_a_reversed_date_range(
    client, investigator, site_a, site_b
):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    response = client.get(
        reverse("analytics:report"), {"date_from": "2021-02-01", "date_to": "2021-01-01"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "The end date is before the start date." in page
    assert 'id="table1"' not in page
    assert response.context["result"] is None


@pytest.mark.parametrize(
    "url",
    [
        reverse("analytics:download", args=["all", "json"]),
        reverse("analytics:figure", args=["mrs", "svg"]),
        reverse("analytics:patients") + "?cell=table1:female:exposed_n",
        reverse("analytics:published"),
    ],
)
def test_a_reversed_date_range_computes_nothing_from_all_patients(
    client, investigator, site_a, site_b, url
):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    response = client.get(
        url, {"date_from": "2021-02-01", "date_to": "2021-01-01", "cell": "table1:female:n"}
    )
    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


# -- lost to follow-up -----------------------------------------------------------------------


def _exclude(patient, reason, admin_user):
    patient_exclude(user=admin_user, patient=patient, reason=reason, note="see the file")


def test_a_patient_lost_to_follow_up_stays_in_the_analyses_without_the_3_month_mrs(
    site_a, admin_user
):
    kept = make_patient(site_a, study_id="K-1", mrs_3m=2, final_mtici="3", new_infarct=True)
    lost = make_patient(site_a, study_id="L-1", mrs_3m=None, final_mtici="3", new_infarct=True)
    _exclude(lost, PatientExclusionReason.LOST_TO_FOLLOWUP, admin_user)
    result = study_tables()
    assert result["outcomes"]["recanalization"]["all"]["denominator"] == 2
    infarct = next(r for r in result["table3"]["rows"] if r["outcome"] == "new_infarct")
    assert infarct["n"] == 2
    assert result["table2"]["n"] + result["table2"]["missing"] == 2
    assert result["table4"]["n"] + result["table4"]["missing"] == 2
    # Analyses that need the 3-month mRS leave the lost patient out.
    assert result["table1"]["n_analysed"] == 1
    assert result["outcomes"]["death_3m"]["denominator"] == 1
    assert kept.pk != lost.pk


def test_a_lost_patients_recorded_3_month_mrs_is_not_counted(site_a, admin_user):
    lost = make_patient(site_a, study_id="L-2", mrs_3m=5)
    _exclude(lost, PatientExclusionReason.LOST_TO_FOLLOWUP, admin_user)
    result = study_tables()
    assert result["table1"]["n_analysed"] == 0
    assert result["outcomes"]["mrs"]["month3"] == [0] * 7
    assert result["regression"]["n"] == 0


@pytest.mark.parametrize(
    "reason", [PatientExclusionReason.CONSENT_WITHDRAWN, PatientExclusionReason.OTHER]
)
def test_a_withdrawn_or_otherwise_excluded_patient_leaves_every_analysis(
    site_a, admin_user, reason
):
    make_patient(site_a, study_id="K-2", mrs_3m=2, final_mtici="3")
    gone = make_patient(site_a, study_id="W-1", mrs_3m=2, final_mtici="3")
    _exclude(gone, reason, admin_user)
    result = study_tables()
    assert result["n_patients"] == 1
    assert result["outcomes"]["recanalization"]["all"]["denominator"] == 1
    assert result["n_excluded"] == 1


def test_the_statistics_guide_says_which_analyses_each_exclusion_removes():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "statistics.md").read_text()
    for reason in PatientExclusionReason.values:
        assert f"`{reason}`" in text, reason


# -- the regression's note -------------------------------------------------------------------


def test_the_regression_note_separates_its_reason_from_its_notes(site_a):
    for i in range(12):
        make_patient(site_a, study_id=f"R-{i:02d}", mrs_3m=[1, 5][i % 2], smoking=i % 3 == 0)
    make_patient(site_a, study_id="R-99", mrs_3m=None)
    note = study_tables(covariates=["smoking", "female"])["regression"]["note"]
    reason, _separator, rest = note.partition(". ")
    assert reason and rest
    assert "excluded for a missing value" in rest


def test_a_regression_of_no_patient_says_there_are_no_patients(site_a):
    make_patient(site_a, study_id="N-1")
    result = study_tables(filters=Filters(date_from=dt.date(2030, 1, 1)))
    reason = result["regression"]["reason"]
    assert result["regression"]["n"] == 0
    assert "no patient" in reason
    assert "does not vary" not in reason
