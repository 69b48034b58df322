"""The regression with continuous covariates, crude beside adjusted ORs, the c statistic,
and covariates refused because they are the outcome (command, study tables, web form)."""

import csv
import io
import json

import numpy as np
import openpyxl
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from analytics import exposures as ex
from analytics import stats, tables

from .analytics_cohort import build_cohort, bulk_cohort

REPORT = reverse("analytics:report")
OUTCOME_KEYS = ("poor_outcome_3m", "non_poor_3m", "good_outcome_3m", "death_3m", "mrs_3m")


def _columns(n=120, seed=3):
    rng = np.random.default_rng(seed)
    age = rng.normal(68, 11, n).round()
    nihss = rng.integers(2, 30, n).astype(float)
    logit = -9 + 0.09 * age + 0.12 * nihss
    poor = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    female = rng.integers(0, 2, n).astype(float)
    age[:4] = np.nan  # incomplete cases are left out of every model
    return {ex.TABLE1_OUTCOME: poor, "age_years": age, "nihss_admission": nihss, "female": female}


# -- pure: the c statistic -------------------------------------------------------------------


def test_the_c_statistic_counts_concordant_pairs_and_ties_as_one_half():
    # Pairs (event score, no-event score): (3, 2) (3, 1) concordant, (1, 2) discordant,
    # (1, 1) a tie: (2 + 0.5) / 4.
    assert stats.c_statistic([1, 1, 0, 0], [3, 1, 2, 1]) == pytest.approx(0.625, abs=1e-15)


def test_the_c_statistic_of_counted_rows_equals_the_rows_repeated():
    y, score, counts = [1, 0, 1, 0], [0.5, 0.2, -1.0, 0.7], [3, 2, 1, 4]
    repeated = stats.c_statistic(np.repeat(y, counts), np.repeat(score, counts))
    assert stats.c_statistic(y, score, freq_weights=counts) == pytest.approx(repeated, abs=1e-15)


def test_the_c_statistic_needs_both_outcomes():
    assert stats.c_statistic([1, 1], [0.1, 0.2]) is None


# -- the regression on columns ---------------------------------------------------------------


def test_a_continuous_covariate_is_entered_linearly_as_one_row_per_patient_would_be():
    columns = _columns(n=300)
    result = tables.regression(columns, ["age_years", "nihss_admission", "female"])
    frame = pd.DataFrame({k: columns[k] for k in ("age_years", "nihss_admission", "female")})
    direct = stats.logistic_regression(columns[ex.TABLE1_OUTCOME], frame, method="auto")
    assert result["method"] == direct.method == "logit"
    assert result["n"] == direct.n == 296 and result["n_excluded_missing"] == 4
    for term, expected in zip(result["terms"], direct.terms, strict=True):
        assert term["or"] == pytest.approx(expected.odds_ratio, rel=1e-9)
        assert term["ci"] == pytest.approx(list(expected.ci), rel=1e-9)
    assert result["c_statistic"] == pytest.approx(direct.c_statistic, rel=1e-12)
    assert 0.5 < result["c_statistic"] < 1


def test_each_term_says_per_what_unit_its_or_is():
    result = tables.regression(_columns(), ["age_years", "nihss_admission", "female"])
    units = [t["unit"] for t in result["terms"]]
    assert units == ["per year", "per point", "yes vs no"]


def test_each_crude_or_is_the_covariate_alone_on_the_adjusted_models_patients():
    columns = _columns()
    result = tables.regression(columns, ["age_years", "nihss_admission"])
    complete = ~np.isnan(columns["age_years"])
    alone = stats.logistic_regression(
        columns[ex.TABLE1_OUTCOME][complete],
        pd.DataFrame({"nihss_admission": columns["nihss_admission"][complete]}),
    )
    nihss = result["terms"][1]
    assert nihss["crude_or"] == pytest.approx(alone.terms[0].odds_ratio, rel=1e-9)
    assert nihss["crude_ci"] == pytest.approx(list(alone.terms[0].ci), rel=1e-9)
    assert nihss["crude_p"] == pytest.approx(alone.terms[0].p, rel=1e-9)
    assert nihss["crude_or"] != pytest.approx(nihss["or"], rel=1e-6)


@pytest.mark.parametrize(
    ("method", "ci_method", "p_method"),
    [("logit", "wald", "wald"), ("firth", "profile-likelihood", "penalized-likelihood-ratio")],
)
def test_the_regression_names_the_ci_and_p_of_the_method_that_ran(method, ci_method, p_method):
    columns = _columns(n=120 if method == "logit" else 30, seed=5)
    result = tables.regression(columns, ["age_years", "nihss_admission"])
    assert (result["method"], result["ci_method"], result["p_method"]) == (
        method,
        ci_method,
        p_method,
    )


# -- refused covariates ----------------------------------------------------------------------


@pytest.mark.parametrize("key", OUTCOME_KEYS)
def test_a_covariate_derived_from_the_outcome_is_refused_naming_it(key):
    with pytest.raises(ValueError, match=rf"{key} refused: the outcome"):
        tables.validate_covariates(["age_years", key])


@pytest.mark.django_db
@pytest.mark.parametrize("key", OUTCOME_KEYS)
def test_the_command_refuses_an_outcome_covariate_naming_it(key, site_a, site_b):
    build_cohort(site_a, site_b)
    with pytest.raises(CommandError, match=rf"{key} refused: the outcome"):
        call_command("study_tables", "--covariates", f"age_years,{key}")


@pytest.mark.django_db
def test_the_command_accepts_continuous_covariates(site_a, tmp_path):
    bulk_cohort(site_a, 85)
    out = io.StringIO()
    chosen = "age_years,nihss_admission,dwi_aspects"
    call_command("study_tables", "--covariates", chosen, stdout=out)
    reg = json.loads(out.getvalue())["regression"]
    assert [t["key"] for t in reg["terms"]] == ["age_years", "nihss_admission", "dwi_aspects"]
    assert [t["unit"] for t in reg["terms"]] == ["per year", "per point", "per point"]
    assert reg["ci_method"] in ("wald", "profile-likelihood")
    assert reg["p_method"] in ("wald", "penalized-likelihood-ratio")
    assert 0 <= reg["c_statistic"] <= 1


@pytest.mark.django_db
def test_the_csv_and_xlsx_carry_the_crude_ors_and_the_methods(site_a, tmp_path):
    bulk_cohort(site_a, 85)
    out = io.StringIO()
    call_command("study_tables", "--format", "csv", "--covariates", "age_years,female", stdout=out)
    block = next(b for b in out.getvalue().split("\n\n") if b.startswith("# regression"))
    rows = list(csv.DictReader(io.StringIO(block.split("\n", 1)[1])))
    assert [r["unit"] for r in rows] == ["per year", "yes vs no"]
    for column in ("crude_or", "crude_ci_low", "ci_method", "p_method", "c_statistic"):
        assert rows[0][column]
    target = tmp_path / "tables.xlsx"
    call_command("study_tables", "--format", "xlsx", "--output", str(target))
    sheet = openpyxl.load_workbook(target)["regression"]
    header = [cell.value for cell in sheet[1]]
    assert {"crude_or", "ci_method", "p_method", "c_statistic", "unit"} <= set(header)


# -- the web form ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_report_refuses_an_outcome_covariate_instead_of_fitting_the_defaults(
    client, investigator, site_a, site_b
):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    response = client.get(REPORT, {"covariates": ["age_70_plus", "death_3m"]})
    assert response.status_code == 200
    assert response.context["result"] is None
    errors = response.context["form"].errors["covariates"]
    assert errors == [
        "Covariate death_3m refused: the outcome (poor outcome at 3 months) and the values "
        "derived from the 3-month mRS cannot be covariates."
    ]
    assert "death_3m refused" in response.content.decode()


@pytest.mark.django_db
def test_a_download_with_an_outcome_covariate_is_refused(client, investigator, site_a, site_b):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    url = reverse("analytics:download", args=["regression", "csv"])
    response = client.get(url, {"covariates": "mrs_3m"})
    assert response.status_code == 400
    assert "mrs_3m refused" in response.content.decode()


@pytest.mark.django_db
def test_the_report_fits_the_continuous_covariates_chosen_on_the_form(client, investigator, site_a):
    bulk_cohort(site_a, 85)
    client.force_login(investigator)
    response = client.get(REPORT, {"covariates": ["age_years", "procedure_minutes"]})
    reg = response.context["result"]["regression"]
    assert reg["covariates"] == ["age_years", "procedure_minutes"]
    assert [t["unit"] for t in reg["terms"]] == ["per year", "per minute"]
    assert "per minute" in response.content.decode()
