"""The shift analysis: proportional-odds common ORs of a worse 3-month mRS, against R's
MASS::polr, and in the study tables, the report page, the sheets and the Grotta chart."""

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse

from analytics import exposures as ex
from analytics import ordinal, tables
from analytics.regression import Design, fit_shift

from .analytics_cohort import build_cohort, bulk_cohort

REFERENCE = Path(__file__).parent / "reference"
LINE = re.compile(
    r"(\w+) \| factor\(mrs_3m\) ~ ([\w +]+) \| n (\d+) \| "
    r"common_or (\S+) \| ci (\S+) (\S+) \| p (\S+)"
)


def _polr_reference():
    """tests/reference/shift_reference.txt, written by shift_reference.R (R 4.2.2, MASS)."""
    rows = []
    for line in (REFERENCE / "shift_reference.txt").read_text().splitlines():
        name, formula, n, common, low, high, p = LINE.fullmatch(line).groups()
        terms = [t.strip() for t in formula.split("+")]
        rows.append((name, terms, int(n), float(common), (float(low), float(high)), float(p)))
    return rows


@pytest.mark.parametrize(("name", "terms", "n", "common", "ci", "p"), _polr_reference())
def test_the_common_or_agrees_with_mass_polr(name, terms, n, common, ci, p):
    data = pd.read_csv(REFERENCE / f"{name}.csv")
    result = ordinal.proportional_odds(data["mrs_3m"], data[terms], check=False)
    assert result.n == n
    assert result.common_or == pytest.approx(common, rel=1e-4)
    assert result.ci == pytest.approx(ci, rel=1e-4)
    assert result.p == pytest.approx(p, rel=1e-4)


def test_the_zero_cell_cohort_has_a_grade_missing_from_each_group():
    data = pd.read_csv(REFERENCE / "shift_zero_cell.csv")
    table = pd.crosstab(data["mrs_3m"], data["exposed"])
    assert (table == 0).any(axis=None)


def test_the_distinct_rows_with_counts_give_the_per_patient_fit():
    data = pd.read_csv(REFERENCE / "shift_cohort.csv")
    design = Design(
        "mrs_3m", ("exposed",), {k: data[k].to_numpy(float) for k in data}, continuous=("mrs_3m",)
    )
    assert len(design.counts) < len(data)
    counted = fit_shift(design)
    alone = ordinal.proportional_odds(data["mrs_3m"], data[["exposed"]])
    assert counted.common_or == pytest.approx(alone.common_or, rel=1e-5)
    assert counted.ci == pytest.approx(alone.ci, rel=1e-5)


def test_an_exposure_that_does_not_vary_has_no_common_or_and_a_note():
    result = ordinal.proportional_odds([0, 3, 6, 2], pd.DataFrame({"x": [1, 1, 1, 1]}))
    assert (result.common_or, result.ci, result.p) == (None, None, None)
    assert result.note == "the exposure does not vary"


def test_the_check_flags_cut_points_whose_or_excludes_the_common_or():
    # The exposed are worse at the bottom of the scale and better at the top: the
    # binary ORs cross 1 and the common OR cannot describe both.
    y = np.array([0] * 30 + [1] * 10 + [5] * 10 + [2] * 5 + [3] * 40 + [6] * 5)
    x = np.array([0] * 30 + [1] * 10 + [1] * 10 + [0] * 5 + [1] * 40 + [0] * 5)
    result = ordinal.proportional_odds(y, pd.DataFrame({"x": x}))
    assert result.proportional_odds_doubtful is True
    assert "proportional odds doubtful" in result.note
    assert [c.cut for c in result.cut_points] == [0, 1, 2, 3, 5]


# -- the study tables ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_contract_carries_one_shift_row_per_table1_row(site_a):
    bulk_cohort(site_a, 85)
    result = tables.study_tables(None)
    shift = result["shift"]
    assert (shift["model"], shift["ci_method"]) == ("proportional-odds logistic", "wald")
    table1 = result["table1"]["rows"]
    assert [(r["key"], r["population"]) for r in shift["rows"]] == [
        (r["key"], r["population"]) for r in table1
    ]
    for row, t1 in zip(shift["rows"], table1, strict=True):
        assert {"key", "population", "n", "common_or", "ci", "p", "note"} <= set(row)
        assert row["n"] == t1["n"]  # the same patients as the Table I row
        assert sum(row["mrs_exposed"]) == t1["exposed_n"]
        assert sum(row["mrs_unexposed"]) == t1["unexposed_n"]


@pytest.mark.django_db
def test_a_shift_row_is_the_polr_model_of_its_patients(site_a):
    bulk_cohort(site_a, 85)
    result = tables.study_tables(None, covariates=["age_years"])
    row = result["shift"]["rows"][0]
    grades = np.arange(7)
    y = np.concatenate(
        [np.repeat(grades, row["mrs_exposed"]), np.repeat(grades, row["mrs_unexposed"])]
    )
    x = np.repeat([1, 0], [sum(row["mrs_exposed"]), sum(row["mrs_unexposed"])])
    alone = ordinal.proportional_odds(y, pd.DataFrame({"x": x}))
    assert row["common_or"] == pytest.approx(alone.common_or, rel=1e-5)
    assert row["adjusted_or"] is not None and row["adjusted_n"] <= row["n"]


@pytest.mark.django_db
def test_the_report_shows_the_shift_table_and_each_grotta_chart_on_demand(
    client, investigator, site_a, site_b
):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    content = client.get(reverse("analytics:report")).content.decode()
    assert 'id="shift-table"' in content
    chart = reverse("analytics:shift_figure", args=["age_70_plus", "svg"])
    assert chart in content and 'loading="lazy"' in content
    response = client.get(chart)
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"Age &gt;= 70 years: yes" in response.content
    assert (
        client.get(reverse("analytics:shift_figure", args=["shoe_size", "svg"])).status_code == 404
    )


@pytest.mark.django_db
def test_the_shift_sheet_is_in_the_csv(site_a, site_b):
    build_cohort(site_a, site_b)
    out = io.StringIO()
    call_command("study_tables", "--format", "csv", stdout=out)
    block = next(b for b in out.getvalue().split("\n\n") if b.startswith("# shift"))
    rows = list(csv.DictReader(io.StringIO(block.split("\n", 1)[1])))
    assert [r["key"] for r in rows] == [r.key for r in ex.TABLE1_ROWS]
    assert {r["ci_method"] for r in rows} == {"wald"}


@pytest.mark.parametrize("continuous_age", [False, True])
def test_a_design_counts_each_distinct_row_once_whatever_its_values(continuous_age):
    rng = np.random.default_rng(11)
    n = 500
    columns = {
        "mrs_3m": rng.integers(0, 7, n).astype(float),
        "exposed": rng.integers(0, 2, n).astype(float),
        "age_years": rng.integers(40, 90, n) + (rng.random(n) if continuous_age else 0),
    }
    columns["exposed"][:20] = np.nan
    design = Design("mrs_3m", ("exposed", "age_years"), columns, continuous=("mrs_3m", "age_years"))
    rows, counts = design.rows, design.counts
    assert counts.sum() == n
    assert len({tuple(np.nan_to_num(r, nan=-1)) for r in rows}) == len(rows)
    order = np.lexsort(np.nan_to_num(rows, nan=np.inf).T[::-1])
    assert np.array_equal(order, np.arange(len(rows)))  # sorted: the same data, same fit
