"""``outcomes.rates``: every outcome rate with its exact (Clopper-Pearson) 95 % CI, in the
JSON contract, on the report page and in the downloads."""

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from analytics import tables

from .analytics_cohort import build_cohort

pytestmark = pytest.mark.django_db

RATE_KEYS = [
    "recanalization_all",
    "recanalization_anterior",
    "recanalization_posterior",
    "death_3m",
    "mrs_0_2_3m",
    "mrs_0_3_3m",
]
# R 4.2.2 binom.test(k, n)$conf.int * 100 (the exact Clopper-Pearson interval).
R_BINOM_TEST = {
    (10, 10): (69.1502892181239, 100.0),
    (8, 8): (63.0583352447181, 100.0),
    (2, 2): (15.8113883008419, 100.0),
    (1, 8): (0.315972353125191, 52.6509670875207),
    (3, 8): (8.52334141372536, 75.5136783633448),
}


@pytest.fixture
def result(site_a, site_b):
    build_cohort(site_a, site_b)
    return tables.study_tables(None)


def test_every_rate_of_the_contract_is_given_in_order(result):
    rates = result["outcomes"]["rates"]
    assert [r["key"] for r in rates] == RATE_KEYS
    assert {r["ci_method"] for r in rates} == {"clopper-pearson"}


def test_each_rate_counts_what_the_outcome_keys_count(result):
    out = result["outcomes"]
    rates = {r["key"]: r for r in out["rates"]}
    shares = {
        "recanalization_all": out["recanalization"]["all"],
        "recanalization_posterior": out["recanalization"]["posterior"],
        "death_3m": out["death_3m"],
        "mrs_0_2_3m": out["good"]["month3"],
        "mrs_0_3_3m": out["non_poor"]["month3"],
    }
    for key, share in shares.items():
        rate = rates[key]
        assert (rate["numerator"], rate["denominator"]) == (share["n"], share["denominator"])
        assert rate["percent"] == share["percent"]
    assert (rates["death_3m"]["numerator"], rates["death_3m"]["denominator"]) == (1, 8)


def test_each_rate_ci_is_the_exact_interval_of_r_binom_test(result):
    for rate in result["outcomes"]["rates"]:
        expected = R_BINOM_TEST[(rate["numerator"], rate["denominator"])]
        assert rate["ci"] == pytest.approx(expected, rel=1e-12)


def test_the_report_page_shows_each_rate_with_its_ci(client, investigator, site_a, site_b):
    build_cohort(site_a, site_b)
    client.force_login(investigator)
    content = client.get(reverse("analytics:report")).content.decode()
    assert 'id="outcome-rates"' in content
    assert "Clopper" in content
    assert "0.4–64.1" in content  # death by 3 months among site A's 6 with the mRS: 1


def test_the_outcome_sheet_carries_each_rates_ci(result, site_a):
    out = io.StringIO()
    call_command("study_tables", "--format", "csv", stdout=out)
    block = next(b for b in out.getvalue().split("\n\n") if b.startswith("# outcomes"))
    rows = {r["measure"]: r for r in csv.DictReader(io.StringIO(block.split("\n", 1)[1]))}
    assert float(rows["death_3m"]["ci_low"]) == pytest.approx(0.315972353125, rel=1e-9)
    assert rows["good_month3"]["ci_method"] == "clopper-pearson"
    assert rows["death_after_discharge"]["ci_low"] == ""
