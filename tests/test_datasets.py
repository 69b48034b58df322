"""analytics.datasets and analytics.cells: exact counts on a hand-built cohort, filters
and site access."""

import datetime as dt

import pytest
from django.db import connection

from analytics import cells, datasets
from analytics.datasets import Filters

from .analytics_cohort import build_cohort, make_patient
from .factories import ONSET

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(site_a, site_b):
    return build_cohort(site_a, site_b)


def counts_for(user=None, filters=None, table="table1"):
    return datasets.count_table(datasets.patients(user, filters), table)


def test_table1_age_row_counts_only_patients_with_a_three_month_mrs(cohort, investigator):
    counts = counts_for(investigator)
    # Site A: mRS recorded for A-01..A-06; aged >= 70: A-01 (5), A-02 (2), A-03 (6).
    assert counts["table1:analysed"] == 6
    assert counts["table1:missing_outcome"] == 2  # A-07 blank mRS, A-08 no follow-up
    assert counts["table1:age_70_plus:exposed_n"] == 3
    assert counts["table1:age_70_plus:exposed_events"] == 2
    assert counts["table1:age_70_plus:unexposed_n"] == 3
    assert counts["table1:age_70_plus:unexposed_events"] == 1
    assert counts["table1:age_70_plus:missing"] == 0


def test_a_blank_exposure_is_left_out_of_its_row_only(cohort, investigator):
    counts = counts_for(investigator)
    # smoking: A-01 yes (poor), A-04 yes (poor), A-06 blank, the rest no.
    assert counts["table1:smoking:exposed_n"] == 2
    assert counts["table1:smoking:exposed_events"] == 2
    assert counts["table1:smoking:unexposed_n"] == 3
    assert counts["table1:smoking:missing"] == 1


def test_circulation_rows_use_their_own_population(cohort, investigator):
    counts = counts_for(investigator)
    # DWI-ASPECTS < 8 over anterior patients with an mRS.
    assert counts["table1:dwi_aspects_lt8:exposed_n"] == 1  # A-04 (6)
    assert counts["table1:dwi_aspects_lt8:unexposed_n"] == 3
    # pc-ASPECTS < 6 over posterior patients: A-03 (4, dead) and A-05 (8).
    assert counts["table1:pc_aspects_lt6:exposed_events"] == 1
    assert counts["table1:pc_aspects_lt6:unexposed_n"] == 1


def test_onset_over_six_hours_reuses_the_derived_threshold(cohort, investigator):
    counts = counts_for(investigator)
    assert counts["table1:onset_over_6h:exposed_n"] == 1  # A-01 at 7 h; others 4 h
    assert counts["table1:onset_over_6h:exposed_events"] == 1


def test_other_sites_patients_are_never_counted(cohort, investigator, admin_user):
    assert counts_for(investigator, table="baseline")["baseline:patients"] == 8
    assert counts_for(admin_user, table="baseline")["baseline:patients"] == 10
    assert counts_for(None, table="baseline")["baseline:patients"] == 10


def test_site_filter_cannot_widen_access(cohort, investigator):
    counts = counts_for(investigator, Filters(site="B"), table="baseline")
    assert counts["baseline:patients"] == 0


def test_filters_by_site_circulation_and_door_date(cohort, site_a):
    assert counts_for(None, Filters(site="B"), "baseline")["baseline:patients"] == 2
    posterior = counts_for(None, Filters(circulation="posterior"), "baseline")
    assert posterior["baseline:patients"] == 2
    make_patient(site_a, study_id="A-late", door_time=ONSET + dt.timedelta(days=40))
    later = Filters(date_from=(ONSET + dt.timedelta(days=30)).date())
    assert counts_for(None, later, "baseline")["baseline:patients"] == 1
    # date_to is inclusive of the whole day in the registry's time zone.
    same_day = Filters(date_from=ONSET.date(), date_to=ONSET.date())
    assert counts_for(None, same_day, "baseline")["baseline:patients"] == 10


def test_diagnostic_cells_cross_test_and_reference(cohort, site_a):
    make_patient(site_a, study_id="A-fp", mri_diagnosis="occlusion", dsa_diagnosis="stenosis")
    make_patient(site_a, study_id="A-fn", mri_diagnosis="stenosis", dsa_diagnosis="occlusion")
    make_patient(site_a, study_id="A-tn", mri_diagnosis="stenosis", dsa_diagnosis="stenosis")
    make_patient(site_a, study_id="A-na", mri_diagnosis=None)
    counts = counts_for(None, Filters(site="A"), "table2")
    assert (counts["table2:tp"], counts["table2:fp"]) == (8, 1)
    assert (counts["table2:fn"], counts["table2:tn"]) == (1, 1)
    assert counts["table2:missing"] == 1


def test_mrs_distribution_and_mortality(cohort):
    counts = counts_for(None, Filters(site="A"), "outcomes")
    month3 = [counts[f"outcomes:mrs:month3:{g}"] for g in range(7)]
    assert month3 == [1, 1, 1, 0, 1, 1, 1]
    assert counts["outcomes:mrs:month3:missing"] == 2
    assert counts["outcomes:mrs:admission:5"] == 8
    assert (counts["outcomes:death_3m:n"], counts["outcomes:death_3m:denominator"]) == (1, 6)
    assert counts["outcomes:death_after_discharge:n"] == 1


def test_drilldown_lists_exactly_the_patients_of_a_cell(cohort, investigator):
    queryset = datasets.patients(investigator)
    rows = datasets.drilldown(queryset, "table1:age_70_plus:exposed_events")
    assert [r["study_id"] for r in rows] == ["A-01", "A-03"]
    assert isinstance(rows[0], dict)


def test_every_drilldown_agrees_with_its_count(cohort, investigator):
    # The count is numpy on the fetched columns, the drill-down SQL: every cell agrees.
    queryset = datasets.patients(investigator)
    counts = datasets.count_tables(queryset)
    assert len(counts) > 300
    for cell_id, count in counts.items():
        assert datasets.drilldown(queryset, cell_id).count() == count, cell_id


def test_unknown_cell_is_a_key_error():
    with pytest.raises(KeyError):
        cells.cell_condition("table1:nope:exposed_n")
    with pytest.raises(KeyError):
        cells.cell_condition("nope:x")


def test_one_query_per_table(cohort, django_assert_num_queries):
    queryset = datasets.patients(None)
    with django_assert_num_queries(1):
        datasets.count_table(queryset, "table1")
    with django_assert_num_queries(1):
        datasets.fetch_columns(queryset)


def test_continuous_columns_convert_intervals(cohort):
    columns = datasets.fetch_columns(datasets.patients(None, Filters(site="A"))).continuous
    assert sorted(columns["onset_to_door_hours"]) == [4.0] * 7 + [7.0]
    assert sorted(columns["procedure_minutes"])[0] == pytest.approx(50.0)


def test_continuous_intervals_over_a_day_keep_every_second(site_a):
    # Door 1 day 2 h 30 min 15 s after onset (95,415 s); procedure 61 min 30.5 s.
    door = ONSET + dt.timedelta(days=1, hours=2, minutes=30, seconds=15)
    groin = door + dt.timedelta(minutes=30)
    end = groin + dt.timedelta(minutes=61, seconds=30, milliseconds=500)
    make_patient(site_a, door_time=door, groin_puncture_time=groin, procedure_end_time=end)
    columns = datasets.fetch_columns(datasets.patients(None)).continuous
    assert columns["onset_to_door_hours"][0] == pytest.approx(95_415 / 3600, rel=1e-12)
    assert columns["procedure_minutes"][0] == pytest.approx(3_690.5 / 60, rel=1e-12)


def test_patients_excluded_from_the_analysis_are_not_counted(cohort, investigator):
    from registry.models import PatientExclusion

    PatientExclusion.objects.create(
        patient=cohort["A-01"], reason="consent_withdrawn", excluded_on=dt.date(2020, 9, 1)
    )
    PatientExclusion.objects.create(
        patient=cohort["A-02"],
        reason="lost_to_followup",
        excluded_on=dt.date(2020, 9, 1),
        active=False,  # revoked: counted again
    )
    counts = counts_for(investigator, table="baseline")
    assert counts["baseline:patients"] == 7
    assert datasets.patients(investigator, excluded=True).count() == 1


def test_a_user_without_access_counts_nothing(cohort):
    from django.contrib.auth.models import AnonymousUser

    queryset = datasets.patients(AnonymousUser())
    assert set(datasets.count_table(queryset, "table1").values()) == {0}
    assert list(datasets.drilldown(queryset, "baseline:patients")) == []


def test_fetched_columns_hold_each_patients_variables_as_the_database_computes_them(cohort, site_a):
    """The packed codes unpack to exactly the derived expressions' values, patient by
    patient (True / False / NULL), for every variable."""
    from analytics import exposures as ex
    from registry.models import Patient

    sections = ("admission", "imaging", "procedure", "complications", "followup")
    make_patient(site_a, study_id="A-blank", drop=sections)  # nearly every variable NULL

    expressions = ex.variable_expressions()
    expected = Patient.objects.annotate(**{cells.alias(k): e for k, e in expressions.items()})
    seen = set()
    for row in expected.values("pk", *(cells.alias(k) for k in expressions)):
        columns = datasets.fetch_columns(Patient.objects.filter(pk=row["pk"]))
        assert columns.n == 1
        for key in expressions:
            value = row[cells.alias(key)]
            code = {True: cells.TRUE, False: cells.FALSE, None: cells.UNRECORDED}[value]
            assert columns.flags[key][0] == code, (row["pk"], key)
            seen.add((key, value))
    # Every variable was checked with a blank and with at least one recorded value.
    for key in expressions:
        values = {value for k, value in seen if k == key}
        assert len(values) >= 2, key


def test_a_filter_matching_nobody_counts_zero_and_fetches_empty_columns(cohort):
    queryset = datasets.patients(None, Filters(site="NOPE"))
    columns = datasets.fetch_columns(queryset)
    assert columns.n == 0
    assert len(columns.continuous["age"]) == 0
    assert set(cells.count_columns(columns, cells.all_cells()).values()) == {0}


@pytest.mark.parametrize("table", cells.TABLES)
def test_a_table_counted_from_its_own_columns_equals_the_full_read(cohort, table):
    """count_table reads only the columns its cells use (Layout.for_conditions);
    the counts are those of the full read the study tables use."""
    queryset = datasets.patients(None)
    conditions = cells.cells(table)
    narrow = datasets.Layout.for_conditions(conditions.values())
    assert len(narrow.names) < len(datasets.FULL.names)
    full = cells.count_columns(datasets.fetch_columns(queryset), conditions)
    assert datasets.count_table(queryset, table) == full


def test_the_figures_read_only_the_columns_they_count(cohort, django_assert_num_queries):
    """Outcomes and occlusion sites need the raw mRS, occlusion sites and circulation
    and 2 of the 43 derived variables (recanalization, death): the other 41
    expressions and the continuous values are not computed."""
    conditions = cells.all_cells(("outcomes", "occlusion_sites"))
    layout = datasets.Layout.for_conditions(conditions.values())
    assert layout.flags == ("recanalized", "death_3m")
    assert set(layout.raw) == set(cells.RAW_COLUMNS)
    assert not layout.continuous and not layout.enrolment
    with django_assert_num_queries(1) as captured:
        counts = datasets.count_tables(datasets.patients(None), ("outcomes", "occlusion_sites"))
    sql = captured.captured_queries[0]["sql"]
    assert "age_years" not in sql and "onset_time" not in sql
    everything = datasets.fetch_columns(datasets.patients(None))
    assert counts == cells.count_columns(everything, conditions)
    assert datasets.count(datasets.patients(None), {"all": cells.ALWAYS}) == {"all": 10}


def test_raw_code_comparisons_match_blank_and_unknown_values(cohort):
    columns = datasets.fetch_columns(datasets.patients(None, Filters(site="A")))
    posterior = cells.count_columns(columns, {"p": cells.equals("circulation", "posterior")})
    assert posterior == {"p": 2}
    nobody = cells.count_columns(columns, {"x": cells.equals("circulation", "lateral")})
    assert nobody == {"x": 0}


def test_the_parallel_workers_setting_travels_with_the_fetch_in_one_query(
    cohort, settings, django_assert_num_queries
):
    settings.ANALYTICS_PARALLEL_WORKERS = 0
    with django_assert_num_queries(1) as captured:
        counts = datasets.count_table(datasets.patients(None), "baseline")
    assert counts["baseline:patients"] == 10
    sql = captured.captured_queries[0]["sql"]
    on_postgresql = connection.vendor == "postgresql"
    assert ("SET LOCAL max_parallel_workers_per_gather = 0; COPY" in sql) is on_postgresql


def test_the_server_setting_leaves_parallel_workers_alone(
    cohort, settings, django_assert_num_queries
):
    settings.ANALYTICS_PARALLEL_WORKERS = None  # ANALYTICS_PARALLEL_WORKERS=server
    with django_assert_num_queries(1) as captured:
        counts = datasets.count_table(datasets.patients(None), "baseline")
    assert counts["baseline:patients"] == 10
    assert "max_parallel_workers_per_gather" not in captured.captured_queries[0]["sql"]


def test_counting_again_or_cell_by_cell_gives_the_same_counts(cohort):
    """The counts keep no cell's mask between calls: every order gives the same numbers."""
    columns = datasets.fetch_columns(datasets.patients(None))
    conditions = cells.all_cells()
    first = cells.count_columns(columns, conditions)
    assert cells.count_columns(columns, conditions) == first
    alone = {cell: cells.count_columns(columns, {cell: c})[cell] for cell, c in conditions.items()}
    assert alone == first
    assert sum(first.values()) > 0
