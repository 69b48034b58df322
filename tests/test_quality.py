"""Quality indicators (shared/spec/quality-indicators.md): reference values worked out
by hand, the award boundaries, the JSON contract on the registry and on an imported
file without the quality columns, and a constant number of queries."""

import datetime as dt
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from scipy.stats import binomtest

from analytics import indicators as qi
from analytics import quality
from analytics.datasets import Filters
from registry.interchange import columns as interchange
from registry.interchange.importer import registry_import

from .analytics_cohort import make_patient
from .factories import SiteFactory, aware
from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------ pure statistics


def test_median_and_quartiles_are_rs_type_7():
    """Minutes 12, 30, 45, 61, 90, 95 (n = 6): type 7 places quantile p at position
    (n - 1) p = 5 p from 0 and interpolates linearly:
    Q1 at 1.25 -> 30 + 0.25 * (45 - 30) = 33.75; median at 2.5 -> 45 + 0.5 * 16 = 53;
    Q3 at 3.75 -> 61 + 0.75 * (90 - 61) = 82.75. Within 60 min: 12, 30, 45 = 3 of 6."""
    summary = qi.summarize_times([95, 12, 61, 30, 90, 45], (60, 90))
    assert (summary.n, summary.q1, summary.median, summary.q3) == (6, 33.75, 53.0, 82.75)
    assert summary.within[60] == qi.Within(3, 6, 50.0)
    assert summary.within[90] == qi.Within(5, 6, 500 / 6)


def test_no_interval_gives_null_median_and_quartiles():
    summary = qi.summarize_times([], (45, 60))
    assert (summary.n, summary.median, summary.q1, summary.q3) == (0, None, None, None)
    assert summary.within[60] == qi.Within(0, 0, None)


def test_intervals_count_only_both_times_recorded_not_negative_and_in_the_subgroup():
    start = np.array([0.0, 0.0, 600.0, np.nan, 0.0])
    end = np.array([1800.0, np.nan, 0.0, 60.0, 0.0])
    only = np.array([True, True, True, True, True])
    # 30 min; end missing; negative; start missing; zero minutes counts.
    assert qi.intervals(start, end, only).tolist() == [30.0, 0.0]
    assert qi.intervals(start, end, ~only).tolist() == []


@pytest.mark.parametrize("k, n", [(0, 7), (3, 8), (17, 29), (29, 29), (412, 1000)])
def test_a_rate_ci_is_clopper_pearson_as_scipy_binomtest_exact(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    found = qi.summarize_rate(k, n, 80.0)
    assert found.percent == pytest.approx(100 * k / n, abs=1e-12)
    assert found.ci_low == pytest.approx(100 * expected.low, abs=1e-9)
    assert found.ci_high == pytest.approx(100 * expected.high, abs=1e-9)


def test_a_target_written_at_most_is_met_at_or_below_it():
    assert qi.summarize_rate(6, 100, 6.0, at_most=True).met is True
    assert qi.summarize_rate(7, 100, 6.0, at_most=True).met is False
    assert qi.summarize_rate(80, 100, 80.0).met is True
    assert qi.summarize_rate(79, 100, 80.0).met is False
    assert qi.summarize_rate(1, 100, None).met is None
    assert qi.summarize_rate(0, 0, 80.0) == qi.RateSummary(0, 0, None, None, None, 80.0, None)


def minutes_with(n: int, within_60: int, within_90: int) -> list[int]:
    """``n`` door-to-groin intervals: ``within_60`` of 50 min, then up to ``within_90`` of
    80 min, the rest 120 min."""
    return [50] * within_60 + [80] * (within_90 - within_60) + [120] * (n - within_90)


@pytest.mark.parametrize(
    "n, within_60, within_90, level",
    [
        (30, 0, 15, "gold"),  # exactly 50 % within 90 min
        (30, 0, 14, None),  # 46.7 %
        (40, 0, 30, "platinum"),  # exactly 75 % within 90 min
        (40, 0, 29, "gold"),  # 72.5 %
        (40, 20, 30, "diamond"),  # and exactly 50 % within 60 min
        (40, 19, 30, "platinum"),  # 47.5 % within 60 min
        (29, 29, 29, None),  # every patient in time, but fewer than 30
    ],
)
def test_door_to_groin_award_boundaries(n, within_60, within_90, level):
    summary = qi.summarize_times(minutes_with(n, within_60, within_90), (60, 90))
    assert qi.award("door_to_groin", summary) == level


def test_door_to_needle_award_uses_45_and_60_minutes():
    """40 patients: 30 at 40 min, 10 at 70 min: 75 % within 60 and 75 % within 45."""
    summary = qi.summarize_times([40] * 30 + [70] * 10, (45, 60))
    assert qi.award("door_to_needle", summary) == "diamond"
    summary = qi.summarize_times([50] * 30 + [70] * 10, (45, 60))
    assert qi.award("door_to_needle", summary) == "platinum"


def test_funnel_limits_are_exact_binomial_quantiles():
    """p = 0.2, n = 50: binom.ppf(0.025) = 5, binom.ppf(0.975) = 16 (scipy), so 10 %
    and 32 %; the 99.8 % limits lie outside the 95 % ones."""
    limits = qi.funnel_limits(0.2, [50, 200])
    low, high = limits[0.95]
    assert (low[0], high[0]) == (10.0, 32.0)
    wide_low, wide_high = limits[0.998]
    assert np.all(wide_low <= low) and np.all(wide_high >= high)
    assert high[1] - low[1] < high[0] - low[0]  # narrower for a larger site


@pytest.mark.parametrize("seed", range(5))
def test_grouped_medians_are_numpys_type_7_median_of_each_group(seed):
    """Against ``numpy.percentile(50, method="linear")`` group by group, exactly: odd and
    even groups, ties, fractions of a minute."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 40, 2000)
    values = [rng.normal(60, 25, 2000), rng.integers(0, 300, 2000) / 60.0][seed % 2]
    present, medians = qi.grouped_medians(values, groups)
    assert present.tolist() == sorted(set(groups.tolist()))
    for group, median in zip(present, medians, strict=True):
        assert median == np.percentile(values[groups == group], 50, method="linear")


# ------------------------------------------------------------------ on the registry


def treated(door: dt.datetime, to_groin: int, **fields) -> dict:
    """A patient's times: onset 2 h before the door, groin ``to_groin`` min after it,
    the procedure 60 min (imaging and reperfusion follow at the typical delays)."""
    groin = door + dt.timedelta(minutes=to_groin)
    return {
        "onset_time": door - dt.timedelta(hours=2),
        "door_time": door,
        "groin_puncture_time": groin,
        "procedure_end_time": groin + dt.timedelta(minutes=60),
        **fields,
    }


@pytest.fixture
def quarters(site_a, site_b):
    """Site A: 29 patients in 2021-Q1 (door-to-groin 50 min) and 30 in 2021-Q2 (50 min),
    two of Q2 thrombolysed (needle 30 and 50 min after the door). Site B: 3 patients
    in 2021-Q2 (door-to-groin 100, 120, 140 min), none thrombolysed."""
    for i in range(29):
        make_patient(site_a, study_id=f"A1-{i}", **treated(aware(2021, 1, 10, 9, i), 50))
    for i in range(30):
        extra = {}
        if i < 2:
            needle = aware(2021, 4, 10, 9, i) + dt.timedelta(minutes=30 + 20 * i)
            extra = {"iv_thrombolysis": True, "needle_time": needle}
        make_patient(site_a, study_id=f"A2-{i}", **treated(aware(2021, 4, 10, 9, i), 50, **extra))
    for i, to_groin in enumerate((100, 120, 140)):
        make_patient(site_b, study_id=f"B2-{i}", **treated(aware(2021, 5, 3, 8, 0), to_groin))


def find(rows, code, site=None, period=None):
    return next(
        r for r in rows if r["code"] == code and r["site"] == site and r["period"] == period
    )


def test_a_quarter_of_29_patients_has_no_award_and_one_of_30_has_it(quarters):
    rows = quality.quality_indicators(None, period="quarter")["rows"]
    q1 = find(rows, "door_to_groin", "A", "2021-Q1")
    q2 = find(rows, "door_to_groin", "A", "2021-Q2")
    assert (q1["n"], q1["median"], q1["award"]) == (29, 50.0, None)
    assert (q2["n"], q2["median"], q2["award"]) == (30, 50.0, "diamond")


def test_a_site_with_no_thrombolysed_patient_has_no_door_to_needle(quarters):
    """Site B: n = 0, null median and quartiles, empty shares, no award. Site A: 30
    and 50 min -> median 40, Q1 35, Q3 45 (type 7); within 45 min: 1 of 2."""
    rows = quality.quality_indicators(None)["rows"]
    b = find(rows, "door_to_needle", "B")
    assert (b["n"], b["median"], b["q1"], b["q3"], b["award"]) == (0, None, None, None, None)
    assert b["within"]["60"] == {"numerator": 0, "denominator": 0, "percent": None}
    a = find(rows, "door_to_needle", "A")
    assert (a["n"], a["median"], a["q1"], a["q3"]) == (2, 40.0, 35.0, 45.0)
    assert a["within"]["45"] == {"numerator": 1, "denominator": 2, "percent": 50.0}


def test_site_b_door_to_groin_and_the_registry_wide_row(quarters):
    """Site B: 100, 120, 140 -> median 120, Q1 110, Q3 130, none within 90 min.
    All sites: 59 at 50 min and B's 3: median 50; within 90 min 59 of 62."""
    rows = quality.quality_indicators(None)["rows"]
    b = find(rows, "door_to_groin", "B")
    assert (b["n"], b["median"], b["q1"], b["q3"]) == (3, 120.0, 110.0, 130.0)
    assert b["within"]["90"]["numerator"] == 0
    everyone = find(rows, "door_to_groin")
    assert (everyone["n"], everyone["median"]) == (62, 50.0)
    assert everyone["within"]["90"] == {
        "numerator": 59,
        "denominator": 62,
        "percent": pytest.approx(100 * 59 / 62),
    }


def test_rates_on_the_typical_patients(quarters):
    """Every patient is the typical one (final mTICI 3, MT with 2 passes, no ICH, mRS 2
    at 3 months, door dates in 2021 so the 3-month window has closed): reperfusion
    62/62, first pass 0/62, sICH 0/62, mRS 0-2 62/62, follow-up 62/62."""
    rows = quality.quality_indicators(None)["rows"]
    reperfusion = find(rows, "reperfusion_mtici_2b_3")
    assert (reperfusion["numerator"], reperfusion["denominator"], reperfusion["met"]) == (
        62,
        62,
        True,
    )
    first_pass = find(rows, "first_pass_reperfusion")
    assert (first_pass["numerator"], first_pass["denominator"], first_pass["met"]) == (0, 62, False)
    sich = find(rows, "sich")
    assert (sich["numerator"], sich["denominator"], sich["met"]) == (0, 62, True)
    assert find(rows, "mrs_0_2_3m")["percent"] == 100.0
    assert find(rows, "mortality_3m")["numerator"] == 0
    assert find(rows, "followup_3m_complete")["denominator"] == 62
    assert find(rows, "minimum_dataset_complete")["numerator"] == 62


def test_the_drilldown_lists_the_patients_behind_a_count(quarters):
    cols = quality.columns(quality.read(None, Filters()))
    thrombolysed = quality.patients_of(cols, "door_to_needle", "n", site="A", period="2021-Q2")
    assert len(thrombolysed) == 2
    fast = quality.patients_of(cols, "door_to_needle", "within", site="A", threshold=45)
    assert len(fast) == 1
    assert len(quality.patients_of(cols, "sich", "denominator", site="B")) == 3
    with pytest.raises(KeyError):
        quality.patients_of(cols, "nothing", "n")


def test_the_command_writes_the_contract_for_one_site_and_window(quarters):
    out = StringIO()
    call_command(
        "quality_indicators",
        "--site",
        "B",
        "--from",
        "2021-04-01",
        "--to",
        "2021-06-30",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["filters"] == {
        "site": "B",
        "from": "2021-04-01",
        "to": "2021-06-30",
        "period": "all",
    }
    assert {r["site"] for r in result["rows"]} == {None, "B"}
    for r in result["rows"]:
        keys = {"code", "kind", "site", "period"}
        if r["kind"] == "time":
            keys |= {"n", "median", "q1", "q3", "within"}
        else:
            keys |= {"numerator", "denominator", "percent", "ci_low", "ci_high", "target", "met"}
        assert keys <= set(r), r["code"]
    assert find(result["rows"], "door_to_groin", "B")["n"] == 3


def test_a_file_without_the_quality_columns_gives_n_0_for_the_times_needing_them(tmp_path, site_a):
    header = [n for n in interchange.column_names() if n not in interchange.APPENDED]
    rows = [row(study_id=f"T-{i}", iv_thrombolysis="1") for i in range(3)]
    result = registry_import(file=write_csv(tmp_path, rows, header=header))
    assert result.ok, result.problems[:3]
    out = StringIO()
    call_command("quality_indicators", stdout=out)
    found = json.loads(out.getvalue())["rows"]
    for code in ("door_to_imaging", "door_to_needle", "imaging_to_groin"):
        assert find(found, code)["n"] == 0, code
    for code in ("groin_to_reperfusion", "onset_to_reperfusion"):
        assert find(found, code)["n"] == 0, code
    assert find(found, "door_to_groin")["n"] == 3
    assert find(found, "reperfusion_mtici_2b_3")["denominator"] == 3


def test_the_report_takes_a_constant_number_of_queries(site_a, site_b, django_assert_num_queries):
    for size in (2, 6):
        for i in range(size):
            make_patient(site_a if i % 2 else site_b, study_id=f"Q{size}-{i}")
        with django_assert_num_queries(2):  # the patients, the site codes
            quality.quality_indicators(None, period="quarter")


def test_the_page_counts_in_a_constant_number_of_queries_and_its_figures_reuse_it(
    site_a, site_b, django_assert_num_queries
):
    sites = [site_a, site_b]
    for size in (2, 6):
        for i in range(size):
            make_patient(sites[i % len(sites)], study_id=f"P{size}-{i}")
        sites.append(SiteFactory(code=f"C{size}"))  # more sites too
        with django_assert_num_queries(3):  # the site codes, the data's version, the patients
            first = quality.page(None, Filters())
        with django_assert_num_queries(2):  # a figure: the same numbers, remembered
            assert quality.page(None, Filters()) == first
        assert find(first["rows"], "door_to_groin")["n"] == {2: 2, 6: 8}[size]


def test_the_page_shows_a_change_saved_since_it_was_computed(site_a):
    patient = make_patient(site_a, study_id="CHANGED")
    before = find(quality.page(None, Filters())["rows"], "mortality_3m")
    followup = patient.followup
    followup.mrs_3m, followup.death_date = 6, dt.date(2020, 7, 1)
    followup.save()
    after = find(quality.page(None, Filters())["rows"], "mortality_3m")
    assert (before["numerator"], after["numerator"]) == (0, 1)


def test_the_pages_rows_and_run_charts_are_the_contracts_numbers(quarters):
    """The page and the JSON contract count the same read: the rows of the whole window,
    and each site's run-chart median of a quarter is the quarter's row median."""
    page = quality.page(None, Filters())
    assert page["rows"] == quality.quality_indicators(None)["rows"]
    by_quarter = quality.quality_indicators(None, period="quarter")["rows"]
    for code, per_site in page["run_charts"].items():
        for site, medians in per_site.items():
            for label, median in medians.items():
                assert median == find(by_quarter, code, site, label)["median"]
    assert page["quarters"] == ["2021-Q1", "2021-Q2"]


def test_a_door_time_counts_in_the_quarter_of_its_local_date(site_a):
    """00:30 on 1 April in the registry's zone (UTC+7) is still 31 March in UTC: the
    quarter is the local date's, whatever the database's own time zone."""
    make_patient(site_a, study_id="LATE", **treated(aware(2021, 3, 31, 23, 30), 50))
    make_patient(site_a, study_id="EARLY", **treated(aware(2021, 4, 1, 0, 30), 50))
    rows = quality.quality_indicators(None, period="quarter")["rows"]
    assert find(rows, "door_to_groin", "A", "2021-Q1")["n"] == 1
    assert find(rows, "door_to_groin", "A", "2021-Q2")["n"] == 1
