"""analytics.tables and the study_tables command on hand-built cohorts.

Counts are compared exactly; statistics are checked against the same counts run
through ``analytics.stats`` (whose reference values are tested in test_stats.py),
and the one RR computed by hand below (RR = (2/3)/(1/3) = 2).
"""

import csv
import datetime
import io
import json

import numpy as np
import openpyxl
import pytest
from django.core.management import CommandError, call_command

from analytics import cells, datasets, tables
from analytics import exposures as ex
from analytics.datasets import Filters

from .analytics_cohort import build_cohort, bulk_cohort

pytestmark = pytest.mark.django_db

CONTRACT_TOP = {
    "generated_at",
    "filters",
    "n_patients",
    "baseline",
    "table1",
    "table2",
    "table3",
    "table4",
    "outcomes",
    "occlusion_sites",
    "regression",
}
CONTRACT_ROW = {
    "key",
    "label",
    "population",
    "n",
    "exposed_n",
    "exposed_events",
    "unexposed_n",
    "unexposed_events",
    "percent",
    "rr",
    "rr_ci",
    "rd",
    "rd_ci",
    "p",
    "nnh",
    "nnt",
    "nn_unrounded",
    "note",
    "missing",
}
CONTRACT_DIAGNOSTIC = {
    "test",
    "reference",
    "positive",
    "tp",
    "fp",
    "fn",
    "tn",
    "p",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "lr_positive",
    "lr_negative",
}


@pytest.fixture
def cohort(site_a, site_b):
    return build_cohort(site_a, site_b)


@pytest.fixture
def result(cohort, investigator):
    return tables.strip_internal(tables.study_tables(investigator))


def row(result, key, table="table1"):
    return next(r for r in result[table]["rows"] if r["key"] == key)


def test_the_json_contract_keys_are_all_present(result):
    assert CONTRACT_TOP <= set(result)
    assert set(result["filters"]) == {"site", "from", "to", "circulation"}
    assert {"n", "mean", "sd", "median", "q1", "q3", "min", "max"} <= set(result["baseline"]["age"])
    assert {"key", "n", "denominator", "missing"} <= set(result["baseline"]["rows"][0])
    t1 = result["table1"]
    assert {"outcome", "n_analysed", "n_missing_outcome", "p_method", "rows"} <= set(t1)
    assert [r["key"] for r in t1["rows"]] == [r.key for r in ex.TABLE1_ROWS]
    for r in t1["rows"] + result["table3"]["rows"]:
        assert CONTRACT_ROW <= set(r)
    assert {"exposure", "outcome"} <= set(result["table3"]["rows"][0])
    for name in ("table2", "table4"):
        assert CONTRACT_DIAGNOSTIC <= set(result[name])
        assert {"estimate", "ci"} <= set(result[name]["sensitivity"])
    assert (result["table2"]["test"], result["table2"]["positive"]) == (
        "mri_diagnosis",
        "occlusion",
    )
    assert (result["table4"]["test"], result["table4"]["reference"]) == ("swi_clot", "mt_performed")
    outcomes = result["outcomes"]
    assert set(outcomes["recanalization"]) == {"all", "anterior", "posterior"}
    assert {"n", "denominator"} <= set(outcomes["death_3m"])
    assert all(len(outcomes["mrs"][tp]) == 7 for tp in ("admission", "discharge", "month3"))
    assert set(result["occlusion_sites"]["mri"]) == set(ex.OCCLUSION_SITES)
    reg = result["regression"]
    assert {"outcome", "method", "n", "events", "terms", "note"} <= set(reg)
    assert {"key", "or", "ci", "p"} <= set(reg["terms"][0])
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN or infinity


def test_table1_row_counts_and_risk_ratio_are_exact(result):
    age = row(result, "age_70_plus")
    assert (age["exposed_events"], age["exposed_n"]) == (2, 3)
    assert (age["unexposed_events"], age["unexposed_n"]) == (1, 3)
    assert (age["n"], age["missing"]) == (6, 0)
    assert age["percent"] == pytest.approx(2 / 6 * 100, rel=1e-12)
    assert age["rr"] == pytest.approx(2.0, rel=1e-12)  # (2/3) / (1/3)
    assert age["rd"] == pytest.approx(1 / 3, rel=1e-12)
    assert age["nnh"] == 3 and age["nnt"] is None
    assert result["table1"]["n_analysed"] == 6
    assert result["table1"]["n_missing_outcome"] == 2


def test_an_exposure_everyone_has_is_null_with_a_note(result):
    hypertension = row(result, "hypertension")  # the factory records it for everyone
    assert hypertension["unexposed_n"] == 0
    assert hypertension["rr"] is None and hypertension["rr_ci"] is None
    assert hypertension["nnh"] is None and hypertension["nnt"] is None
    assert "not estimable" in hypertension["note"]


def test_circulation_rows_report_their_own_n(result):
    assert row(result, "dwi_aspects_lt8")["population"] == "anterior"
    assert row(result, "dwi_aspects_lt8")["n"] == 4
    assert row(result, "pc_aspects_lt6")["n"] == 2


def test_table3_uses_patients_without_a_three_month_mrs(result):
    dapt_sich = row(result, "dapt_loading:sich", "table3")
    # 8 site-A patients, all with DAPT; A-08 (no follow-up) had the only sICH.
    assert (dapt_sich["exposed_events"], dapt_sich["exposed_n"]) == (1, 8)
    assert dapt_sich["rr"] is None


def test_wald_p_method_changes_only_the_p_values(cohort, investigator):
    fisher = tables.study_tables(investigator, p_method="fisher")
    wald = tables.study_tables(investigator, p_method="wald")
    f_row, w_row = row(fisher, "age_70_plus"), row(wald, "age_70_plus")
    assert f_row["rr"] == w_row["rr"]
    assert f_row["p"] != w_row["p"]
    assert wald["table1"]["p_method"] == "wald"


def test_outcomes_and_occlusion_sites(result):
    outcomes = result["outcomes"]
    assert outcomes["mrs"]["month3"] == [1, 1, 1, 0, 1, 1, 1]
    assert outcomes["mrs_missing"]["month3"] == 2
    assert outcomes["death_3m"] == {"n": 1, "denominator": 6, "percent": pytest.approx(100 / 6)}
    assert outcomes["recanalization"]["posterior"]["denominator"] == 2
    assert result["occlusion_sites"]["mri"]["m1"] == 8


def test_diagnostic_table_from_counts(result):
    t2 = result["table2"]
    assert (t2["tp"], t2["fp"], t2["fn"], t2["tn"]) == (8, 0, 0, 0)
    assert t2["specificity"]["estimate"] is None and t2["specificity"]["ci"] is None


def test_regression_uses_settings_default_covariates(result, settings):
    reg = result["regression"]
    assert reg["covariates"] == list(settings.REGRESSION_DEFAULT_COVARIATES)
    assert [t["key"] for t in reg["terms"]] == reg["covariates"]
    assert reg["note"]


def test_covariates_can_be_chosen_and_unknown_ones_are_refused(cohort):
    result = tables.study_tables(None, covariates=["female", "smoking"])
    assert [t["key"] for t in result["regression"]["terms"]] == ["female", "smoking"]
    with pytest.raises(ValueError):
        tables.study_tables(None, covariates=["shoe_size"])


def test_filters_are_echoed_in_the_contract(cohort):
    result = tables.study_tables(None, Filters(site="B", circulation="anterior"))
    assert result["filters"] == {"site": "B", "from": None, "to": None, "circulation": "anterior"}
    assert result["n_patients"] == 2


# -- the command -----------------------------------------------------------------------------


def test_command_prints_the_json_contract(cohort):
    out = io.StringIO()
    call_command("study_tables", stdout=out)
    result = json.loads(out.getvalue())
    assert CONTRACT_TOP <= set(result)
    assert result["n_patients"] == 10  # a command sees every site
    assert "cell_prefix" not in result["table1"]["rows"][0]


def test_command_options(cohort, tmp_path):
    target = tmp_path / "tables.json"
    call_command(
        "study_tables",
        "--site",
        "A",
        "--from",
        "2020-06-01",
        "--to",
        "2020-06-01",
        "--p-method",
        "wald",
        "--covariates",
        "age_70_plus,female",
        "--output",
        str(target),
    )
    result = json.loads(target.read_text())
    assert result["n_patients"] == 8
    assert result["table1"]["p_method"] == "wald"
    assert [t["key"] for t in result["regression"]["terms"]] == ["age_70_plus", "female"]


def test_command_csv_has_one_block_per_table(cohort):
    out = io.StringIO()
    call_command("study_tables", "--format", "csv", stdout=out)
    blocks = [b for b in out.getvalue().split("\n\n") if b.strip()]
    names = [b.splitlines()[0] for b in blocks]
    assert "# table1" in names and "# regression" in names
    table1 = blocks[names.index("# table1")].split("\n", 1)[1]
    rows = list(csv.DictReader(io.StringIO(table1)))
    assert (
        rows[0]["key"] == "age_70_plus" and rows[0]["exposed_events"] == "4"
    )  # B-01, B-02


def test_command_xlsx_has_one_sheet_per_table(cohort, tmp_path):
    target = tmp_path / "tables.xlsx"
    call_command("study_tables", "--format", "xlsx", "--output", str(target))
    workbook = openpyxl.load_workbook(target)
    assert {"table1", "table2", "table3", "table4", "baseline", "regression"} <= set(
        workbook.sheetnames
    )


def test_command_refuses_bad_arguments(cohort):
    with pytest.raises(CommandError):
        call_command("study_tables", "--site", "nowhere")
    with pytest.raises(CommandError):
        call_command("study_tables", "--covariates", "shoe_size")
    with pytest.raises(CommandError):
        call_command("study_tables", "--from", "yesterday")


# -- a constant number of queries ------------------------------------------------------------


@pytest.mark.parametrize("n_patients", [10, 300])
def test_study_tables_query_count_does_not_grow(
    n_patients, site_a, investigator, django_assert_num_queries
):
    bulk_cohort(site_a, n_patients)
    # The investigator's site keys (registry.access.site_ids_for), the patients' columns
    # (counts, continuous, regression, flow chart's enrolment) and the screening log's counts.
    with django_assert_num_queries(3):
        result = tables.study_tables(investigator)
    assert result["n_patients"] == n_patients


def test_patients_excluded_after_enrolment_are_counted_apart(cohort, investigator):
    from registry.models import PatientExclusion

    PatientExclusion.objects.create(
        patient=cohort["A-03"], reason="consent_withdrawn", excluded_on=datetime.date(2020, 9, 1)
    )
    result = tables.study_tables(investigator)
    assert (result["n_patients"], result["n_excluded"]) == (7, 1)
    assert result["outcomes"]["death_3m"]["n"] == 0  # A-03 was the only death


def test_figure_data_has_what_the_figures_draw(cohort):
    data = tables.figure_data(None, Filters(site="A"))
    assert data["outcomes"]["mrs"]["month3"] == [1, 1, 1, 0, 1, 1, 1]
    assert data["occlusion_sites"]["dsa"]["m1"] == 8


def test_no_patient_at_all_gives_nulls_with_notes_not_errors(db):
    result = tables.strip_internal(tables.study_tables(None))
    assert result["n_patients"] == 0
    age = row(result, "age_70_plus")
    assert (age["n"], age["rr"], age["p"] is not None) == (0, None, True)
    assert age["note"]
    assert result["table2"]["sensitivity"] == {"k": 0, "n": 0, "estimate": None, "ci": None}
    assert result["baseline"]["age"]["mean"] is None
    assert result["regression"]["terms"][0]["or"] is None
    json.dumps(result, allow_nan=False)


def _screened_and_enrolled(patient, day, *, consent: str):
    """The screening entry that led to ``patient``: eligible, consent given."""
    from registry.models import ScreeningEntry

    return ScreeningEntry.objects.create(
        site=patient.site,
        screening_date=day,
        eligible=True,
        consent_given_by=consent,
        consent_date=day,
        patient=patient,
    )


def test_study_tables_json_has_the_flow_counts_of_screening_and_enrolment(db):
    """Hand count: 3 screened (1 not eligible: tandem lesion), 2 enrolled, 1 of them
    later lost to follow-up, the other analysed at 3 months."""
    import datetime as dt

    from analytics.tables import study_tables
    from registry.models import PatientExclusion, ScreeningEntry

    from .factories import FollowUpFactory, PatientFactory, SiteFactory

    site = SiteFactory(code="FLOW")
    analysed = FollowUpFactory(patient=PatientFactory(site=site)).patient
    lost = PatientFactory(site=site)
    PatientExclusion.objects.create(
        patient=lost, reason="lost_to_followup", active=True, excluded_on=dt.date(2020, 9, 1)
    )
    day = dt.date(2020, 6, 1)
    ScreeningEntry.objects.create(
        site=site, screening_date=day, eligible=False, exclusion_reason="tandem_lesion"
    )
    for patient in (analysed, lost):
        _screened_and_enrolled(patient, day, consent="representative")
    flow = study_tables(include_regression=False)["flow"]
    assert flow["screened"] == 3
    assert flow["excluded_at_screening"]["tandem_lesion"] == 1
    assert flow["enrolled"] == 2
    assert flow["lost_to_followup"] == 1
    assert flow["analysed_3m"] == 1


def test_the_flow_of_the_study_tables_is_the_flow_chart_counted_on_its_own(db):
    """The study tables count the enrolled patients from their one read of the
    columns; the flow chart page counts them with its own query: same numbers, for
    every kind of patient (screened or not, excluded in force or revoked, with or
    without a 3-month mRS) and with a site filter."""
    import datetime as dt

    from analytics.datasets import flow
    from registry.models import PatientExclusion

    from .factories import FollowUpFactory, PatientFactory, SiteFactory

    day = dt.date(2020, 6, 1)
    for code in ("FA", "FB"):
        site = SiteFactory(code=code)
        patients = [FollowUpFactory(patient=PatientFactory(site=site)).patient for _ in range(4)]
        patients.append(PatientFactory(site=site))  # no follow-up yet
        for patient, reason, active in (
            (patients[0], "lost_to_followup", True),
            (patients[1], "consent_withdrawn", True),
            (patients[2], "lost_to_followup", False),  # revoked: analysed again
        ):
            PatientExclusion.objects.create(
                patient=patient, reason=reason, active=active, excluded_on=day
            )
        for patient in patients[1:4]:
            _screened_and_enrolled(patient, day, consent="patient")
    for filters in (Filters(), Filters(site="FB")):
        expected = flow(None, filters)
        # By construction: two exclusions in force per site (the third is revoked).
        assert expected["excluded_after_enrolment"]["total"] == (4 if not filters.site else 2)
        result = tables.study_tables(None, filters, include_regression=False)
        assert result["flow"] == expected
        assert result["n_patients"] + result["n_excluded"] == expected["enrolled"]


def test_the_analysis_read_gives_the_columns_of_the_analysis_set(cohort):
    """fetch_analysis reads the excluded patients too and leaves them out afterwards:
    the same columns, patient by patient, as fetch_columns on the analysis set."""
    from registry.models import PatientExclusion

    PatientExclusion.objects.create(
        patient=cohort["A-03"], reason="consent_withdrawn", excluded_on=datetime.date(2020, 9, 1)
    )
    columns, counts = datasets.fetch_analysis(None, Filters())
    alone = datasets.fetch_columns(datasets.patients(None, Filters()))
    assert counts["excluded"] == 1 and columns.n == alone.n == counts["enrolled"] - 1
    conditions = cells.all_cells(cells.TABLES)
    assert cells.count_columns(columns, conditions) == cells.count_columns(alone, conditions)

    # Patient by patient (the rows come in no fixed order: compare them sorted).
    def rows(c):
        keys = sorted(c.flags)
        table = np.column_stack(
            [
                *(c.flags[k] for k in keys),
                *(np.nan_to_num(c.continuous[k], nan=-1) for k in sorted(c.continuous)),
            ]
        )
        return sorted(map(tuple, table.tolist()))

    assert rows(columns) == rows(alone)


def test_the_regression_gives_the_same_digits_whatever_order_the_rows_come_in():
    """The database returns patients in no fixed order; the fit must not depend on it."""
    import numpy as np

    covariates = ["age_70_plus", "female", "sich"]
    rng = np.random.default_rng(7)
    columns = {k: rng.integers(0, 2, 300).astype(float) for k in [ex.TABLE1_OUTCOME, *covariates]}
    columns["female"][:5] = np.nan  # incomplete cases are left out either way
    order = rng.permutation(300)
    shuffled = {key: values[order] for key, values in columns.items()}
    first = tables.regression(columns, covariates)
    assert tables.regression(shuffled, covariates) == first
    assert first["n"] == 295
    assert first["n_excluded_missing"] == 5


def test_the_regression_refuses_a_variable_that_is_not_yes_or_no():
    import numpy as np

    columns = {ex.TABLE1_OUTCOME: np.array([1.0, 0.0, 1.0]), "female": np.array([0.0, 2.0, 1.0])}
    with pytest.raises(ValueError, match="yes/no"):
        tables.regression(columns, ["female"])


def test_a_user_without_any_site_gets_empty_tables_and_flow_without_error(cohort):
    """No access at all: the read is not even sent (an empty queryset), every count
    is 0 and the flow chart is all zeros."""
    from django.contrib.auth.models import AnonymousUser

    result = tables.study_tables(AnonymousUser(), include_regression=False)
    assert (result["n_patients"], result["n_excluded"]) == (0, 0)
    assert result["flow"]["enrolled"] == result["flow"]["screened"] == 0


def test_analysed_at_3_months_has_one_definition_for_the_tables_and_the_flow_chart(
    cohort, investigator
):
    """Site A by hand: A-01..A-06 have a 3-month mRS, A-07's is blank, A-08 has no
    follow-up; A-02, excluded after enrolment, is no longer analysed."""
    from registry.models import PatientExclusion

    PatientExclusion.objects.create(
        patient=cohort["A-02"], reason="lost_to_followup", excluded_on=datetime.date(2020, 9, 1)
    )
    result = tables.study_tables(investigator, include_regression=False)
    assert (result["flow"]["analysed_3m"], result["flow"]["awaiting_3m"]) == (5, 2)
    assert result["flow"] == datasets.flow(investigator)  # the flow chart's own query
