"""Reference-value tests of analytics.stats.

Where each expected number comes from is in the test's docstring. "R" means R 4.2.2 with
epiR 2.0.57; the scripts that produced the numbers are in ``tests/reference/`` with their
output (``risk_reference.R`` -> ``risk_reference.txt``, ``regression_reference.R`` ->
``regression_reference.txt``), so the values can be regenerated; the tests do not need R.
Statistics are compared with a relative tolerance of 1e-4 or tighter (``REL``), counts and
display strings exactly.
"""

from pathlib import Path

import pandas as pd
import pytest

from analytics import stats
from analytics.formatting import format_decimal, format_n_percent, format_nn_interval
from analytics.stats import (
    compare_risks,
    describe,
    detect_separation,
    diagnostic_accuracy,
    logistic_regression,
    nn_interval,
    proportion,
)

REL = 1e-6  # R printed 10 significant digits; library and R agree far below 1e-4
REL_FIRTH = 1e-4  # firthmodels converges to 1e-5 (logistf's default), R code to 1e-10
REFERENCE = Path(__file__).parent / "reference"


def approx(value, rel=REL):
    return pytest.approx(value, rel=rel)


def approx_pair(pair, rel=REL):
    return pytest.approx(tuple(pair), rel=rel)


# --------------------------------------------------------------------------- proportions


def test_proportion_has_the_exact_clopper_pearson_interval():
    """R: binom.test(16, 85)$conf.int -> 0.1115950971 0.2876061250."""
    result = proportion(16, 85)
    assert (result.k, result.n) == (16, 85)
    assert result.estimate == approx(16 / 85)
    assert result.ci == approx_pair((0.1115950971, 0.2876061250))


def test_proportion_of_zero_and_of_all_reaches_the_bounds_exactly():
    """R: binom.test(0, 5) -> 0 0.5218237501; binom.test(5, 5) -> 0.4781762499 1."""
    assert proportion(0, 5).ci == (0.0, approx(0.5218237501))
    assert proportion(5, 5).ci == (approx(0.4781762499), 1.0)


def test_proportion_with_a_zero_denominator_is_null():
    """Contract: a proportion with denominator 0 is null (estimate and CI)."""
    assert proportion(0, 0) == stats.Proportion(k=0, n=0, estimate=None, ci=None)


def test_proportion_rejects_impossible_counts():
    with pytest.raises(ValueError):
        proportion(6, 5)


# --------------------------------------------------------------------------- risk comparison


def test_age_70_plus_row_matches_r_epi_2by2_and_fisher_test():
    """R (risk_reference.txt, "age_70_plus"): for a=16/23, c=22/62,
    epi.2by2(method = "cohort.count"): RR.strata.wald 1.960474308 (1.274086419, 3.016639574),
    OR.strata.wald 4.155844156 (1.484660405, 11.63299068), ARisk.strata.wald 34.08134642
    (11.82249048, 56.34020237) per 100, NNT.strata.wald 2.934156379 (1.774931502, 8.458454686);
    fisher.test p = 0.00685197799382. NNH = ceiling(2.934) = 3 by hand."""
    row = compare_risks(16, 23, 22, 62)
    assert (row.a, row.n1, row.c, row.n0, row.n) == (16, 23, 22, 62, 85)
    assert row.risk_exposed == approx(16 / 23)
    assert row.rr == approx(1.960474308)
    assert row.rr_ci == approx_pair((1.274086419, 3.016639574))
    assert row.odds_ratio == approx(4.155844156)
    assert row.or_ci == approx_pair((1.484660405, 11.63299068))
    assert row.rd == approx(0.3408134642)
    assert row.rd_ci == approx_pair((0.1182249048, 0.5634020237))
    assert row.p == approx(0.00685197799382)
    assert row.p_method == "fisher"
    assert (row.nnh, row.nnt) == (3, None)
    assert row.nn_unrounded == approx(2.934156379)
    assert row.nn_ci.disjoint is False
    assert row.nn_ci.kind == "nnh"
    assert (row.nn_ci.low, row.nn_ci.high) == approx_pair((1.774931502, 8.458454686))
    assert row.correction is None
    assert row.note is None


def test_the_spec_example_rounds_to_the_published_contract_values():
    """study-tables-json.md example: rr 1.9605 (1.2741, 3.0166), rd 0.3408 (0.1182, 0.5634),
    p 0.00685, nn_unrounded 2.934 (4 significant digits there, hence rel=1e-4)."""
    row = compare_risks(16, 23, 22, 62)
    assert row.rr == approx(1.9605, rel=1e-4)
    assert row.rr_ci == approx_pair((1.2741, 3.0166), rel=1e-4)
    assert row.rd_ci == approx_pair((0.1182, 0.5634), rel=1e-3)
    assert row.p == approx(0.00685, rel=1e-3)
    assert row.nn_unrounded == approx(2.934, rel=1e-3)


def test_wald_p_is_the_katz_z_test_and_differs_from_fisher():
    """R: z = log(RR)/sqrt(1/a - 1/n1 + 1/c - 1/n0), 2*pnorm(-|z|) = 0.00220152201631 for the
    age row, against fisher.test 0.00685197799382; for 2/20 vs 10/25: Wald 0.0522339765154,
    Fisher 0.0403849649454 (risk_reference.txt)."""
    assert compare_risks(16, 23, 22, 62, p_method="wald").p == approx(0.00220152201631)
    benefit_wald = compare_risks(2, 20, 10, 25, p_method="wald")
    assert benefit_wald.p_method == "wald"
    assert benefit_wald.p == approx(0.0522339765154)
    assert compare_risks(2, 20, 10, 25).p == approx(0.0403849649454)


def test_a_zero_event_cell_makes_the_rr_not_estimable_but_keeps_rd_nnt_and_fisher():
    """a = 0 of 10, c = 5 of 20. Spec: a = 0 -> RR not estimable. R: fisher.test p =
    0.140036209. By hand: RD = 0 - 0.25 = -0.25, SE = sqrt(0 + 0.25*0.75/20) = 0.0968246,
    CI -0.25 -/+ 1.959964*0.0968246 = (-0.4397727, -0.0602273); NNT = 1/0.25 = 4 exactly."""
    row = compare_risks(0, 10, 5, 20)
    assert row.rr is None and row.rr_ci is None
    assert row.odds_ratio is None and row.or_ci is None
    assert "RR not estimable: no event in the exposed" in row.note
    assert row.p == approx(0.140036209)
    assert row.rd == approx(-0.25)
    assert row.rd_ci == approx_pair((-0.4397727, -0.0602273))
    assert (row.nnt, row.nnh) == (4, None)
    assert row.nn_unrounded == approx(4.0)


def test_wald_p_of_a_zero_event_cell_is_null_with_a_note():
    """ln RR is -infinity when a = 0, so the Katz z test has no value (spec: no correction
    unless asked)."""
    row = compare_risks(0, 10, 5, 20, p_method="wald")
    assert row.p is None
    assert "Wald p not estimable" in row.note


def test_a_zero_non_event_cell_alone_still_gives_a_finite_rr_and_katz_ci():
    """a = n1 = 5, c = 22/62. R epi.2by2: RR 2.818181818 (2.014667368, 3.942163796), OR NaN
    (our null), RD 64.51612903 (52.60639966, 76.4258584) per 100; fisher.test p =
    0.0083591781353; Katz Wald p = 1.44594205539e-09 (risk_reference.txt)."""
    row = compare_risks(5, 5, 22, 62)
    assert row.rr == approx(2.818181818)
    assert row.rr_ci == approx_pair((2.014667368, 3.942163796))
    assert row.odds_ratio is None and "OR not estimable" in row.note
    assert row.rd_ci == approx_pair((0.5260639966, 0.764258584))
    assert row.p == approx(0.0083591781353)
    assert compare_risks(5, 5, 22, 62, p_method="wald").p == approx(1.44594205539e-09)
    assert (row.nnh, row.nnt) == (2, None)
    assert row.nn_unrounded == approx(1.55)


def test_haldane_correction_is_applied_only_when_asked_and_is_reported():
    """a = 0/10, c = 5/20 with 0.5 added to all four cells. R epi.2by2 on the corrected
    table (0.5, 10.5 / 5.5, 15.5): RR 0.173553719 (0.01053646605, 2.858728273), OR
    0.1341991342 (0.006686892212, 2.693240305); Katz Wald p 0.220520446634. Fisher and RD
    stay on the observed counts (fisher.test p 0.140036209, RD -0.25)."""
    row = compare_risks(0, 10, 5, 20, correction="haldane")
    assert row.correction == "haldane"
    assert "Haldane" in row.note
    assert row.rr == approx(0.173553719)
    assert row.rr_ci == approx_pair((0.01053646605, 2.858728273))
    assert row.odds_ratio == approx(0.1341991342)
    assert row.or_ci == approx_pair((0.006686892212, 2.693240305))
    assert row.p == approx(0.140036209)
    assert row.rd == approx(-0.25)
    assert (row.a, row.n1, row.c, row.n0) == (0, 10, 5, 20)
    wald = compare_risks(0, 10, 5, 20, correction="haldane", p_method="wald")
    assert wald.p == approx(0.220520446634)


def test_haldane_correction_is_not_applied_to_a_table_without_a_zero_cell():
    """The conventional Haldane-Anscombe rule corrects only tables with a zero cell; the
    estimates must equal the uncorrected ones (R values of the age row)."""
    row = compare_risks(16, 23, 22, 62, correction="haldane")
    assert row.correction is None
    assert "not applied" in row.note
    assert row.rr == approx(1.960474308)


def test_an_empty_comparison_group_is_not_estimable_and_fisher_p_is_one():
    """Contract: either group empty -> RR null with a note; RD and NN null; Fisher p is 1
    for a table with an empty row (R fisher.test needs a 2x2 with both rows non-empty)."""
    row = compare_risks(0, 0, 5, 20)
    assert row.rr is None and row.rd is None and row.odds_ratio is None
    assert row.nnt is None and row.nnh is None and row.nn_unrounded is None
    assert row.nn_ci is None
    assert row.risk_exposed is None and row.risk_unexposed == approx(0.25)
    assert row.p == 1.0
    assert "comparison group is empty" in row.note
    assert compare_risks(7, 7, 0, 0, p_method="wald").p == 1.0


def test_an_empty_outcome_column_gives_p_one_and_no_number_needed():
    """Everybody had the event: RD = 0 by hand, so NNT/NNH are null; Fisher p = 1 (empty
    column); SE(ln RR) = sqrt(1/4 - 1/4 + 1/6 - 1/6) = 0 and the Wald SE of the RD is 0:
    a CI of zero width would be false precision, so RR and both CIs are not estimable."""
    row = compare_risks(4, 4, 6, 6)
    assert row.p == 1.0
    assert row.rd == 0.0 and row.rd_ci is None
    assert row.nnt is None and row.nnh is None and row.nn_unrounded is None
    assert row.rr is None and row.rr_ci is None
    assert "infinite" in row.note and "every patient in both groups" in row.note


def test_an_rd_interval_spanning_zero_gives_altmans_disjoint_nn_interval():
    """a = 3/10, c = 5/20. R epi.2by2: RR 1.2 (0.3565898804, 4.038252567), ARisk 5
    (-29.15908542, 39.15908542) per 100, NNT.strata.wald 20 (-3.429462843, 2.55368579)
    -- epiR's min/max of the reciprocals, which the spec says is wrong. Altman 1998:
    NNTB 1/0.2915908542 = 3.429462843 to infinity to NNTH 1/0.3915908542 = 2.55368579.
    fisher.test p = 1."""
    row = compare_risks(3, 10, 5, 20)
    assert row.rr_ci == approx_pair((0.3565898804, 4.038252567))
    assert row.rd_ci == approx_pair((-0.2915908542, 0.3915908542))
    assert (row.nnh, row.nnt) == (20, None)
    assert row.nn_ci.disjoint is True
    assert row.nn_ci.nntb == approx(3.429462843)
    assert row.nn_ci.nnth == approx(2.55368579)
    assert row.nn_ci.low is None and row.nn_ci.high is None
    assert format_nn_interval(row.nn_ci) == "NNTB 3.4 to ∞ to NNTH 2.6"
    assert row.p == 1.0


def test_a_protective_exposure_gives_an_nnt_and_the_direction_follows_the_outcome():
    """a = 2/20, c = 10/25. R epi.2by2: RR 0.25 (0.06166809301, 1.013490072), ARisk -30
    (-53.27328283, -6.726717169) per 100, NNT -3.333333333 (-14.86609255, -1.87711353).
    NNT = ceiling(3.333) = 4 by hand. For a desirable outcome (outcome_adverse=False) the
    same RD is harm."""
    row = compare_risks(2, 20, 10, 25)
    assert row.rr == approx(0.25)
    assert row.rr_ci == approx_pair((0.06166809301, 1.013490072))
    assert row.rd_ci == approx_pair((-0.5327328283, -0.06726717169))
    assert (row.nnt, row.nnh) == (4, None)
    assert row.nn_ci.kind == "nnt"
    assert (row.nn_ci.low, row.nn_ci.high) == approx_pair((1.87711353, 14.86609255))
    flipped = compare_risks(2, 20, 10, 25, outcome_adverse=False)
    assert (flipped.nnt, flipped.nnh) == (None, 4)
    assert flipped.nn_ci.kind == "nnh"


def test_nn_interval_with_an_rd_limit_at_zero_is_open_to_infinity():
    """Altman 1998: a limit RD = 0 maps to an infinite NN; by hand 1/0.25 = 4."""
    interval = nn_interval((0.0, 0.25))
    assert interval.kind == "nnh" and interval.low == approx(4.0) and interval.high is None
    assert format_nn_interval(interval) == "NNH 4.0 to ∞"


def test_compare_risks_rejects_unknown_methods_and_impossible_counts():
    with pytest.raises(ValueError):
        compare_risks(1, 2, 1, 2, p_method="chi2")
    with pytest.raises(ValueError):
        compare_risks(1, 2, 1, 2, correction="yates")
    with pytest.raises(ValueError):
        compare_risks(3, 2, 1, 2)


@pytest.mark.parametrize(
    ("a", "n1", "c", "n0", "printed", "wald", "fisher"),
    [
        (16, 23, 22, 62, "0.002", 0.002201522016, 0.006851977994),
        (15, 23, 23, 62, "0.01", 0.01208320754, 0.02752458629),
        (32, 60, 6, 25, "0.03", 0.03361685774, 0.01686642025),
        (4, 4, 34, 81, "<0.0001", 3.03150251e-11, 0.03645572246),
        (2, 3, 36, 82, "0.3", 0.3278189811, 0.5841044852),
        (8, 8, 7, 15, "0.01", 0.005760444939, 0.01936718103),
    ],
    ids=["age_70_plus", "posterior", "procedure_60", "sich", "new_infarct", "pc_aspects"],
)
def test_the_papers_table_i_p_values_are_wald_not_fisher(a, n1, c, n0, printed, wald, fisher):
    """Paper Table I rows reconstructed (tests/reference/paper_table1_reconstruction.py): n1
    is the only exposed-group size (85 patients, 38 poor; posterior 23 with 15 poor) whose
    RR and CI round or truncate to the printed ones. R (risk_reference.txt, last block):
    Wald and fisher.test p. Only the Wald p rounds to the printed p, at the printed number
    of decimals."""
    wald_row = compare_risks(a, n1, c, n0, p_method="wald")
    fisher_row = compare_risks(a, n1, c, n0)
    assert wald_row.p == approx(wald)
    assert fisher_row.p == approx(fisher)

    def shown(p):
        if printed.startswith("<"):
            return "<0.0001" if p < 0.0001 else "other"
        decimals = len(printed.split(".")[1])
        return format_decimal(p, decimals)

    assert shown(wald_row.p) == printed
    assert shown(fisher_row.p) != printed


# --------------------------------------------------------------------------- diagnostic


def test_table_ii_matches_the_spec_reference_values_from_epi_tests():
    """Spec / R epi.tests(as.table(matrix(c(66, 5, 1, 13), 2, byrow = TRUE)), method =
    "exact"): se 0.98507462687 (0.9196235494, 0.9996221937), sp 0.72222222222
    (0.4651980344, 0.9030507875), pv.pos 0.92957746479 (0.8432582827, 0.9767397191), pv.neg
    0.92857142857 (0.6613155101, 0.9981932193), lr.pos 3.54626865672 (1.682721066,
    7.473622124), lr.neg 0.02066590126 (0.002892780127, 0.1476363416); fisher.test p
    1.51890969247e-10."""
    result = diagnostic_accuracy(tp=66, fp=5, fn=1, tn=13)
    assert (result.tp, result.fp, result.fn, result.tn, result.n) == (66, 5, 1, 13, 85)
    assert (result.sensitivity.k, result.sensitivity.n) == (66, 67)
    assert result.sensitivity.estimate == approx(0.98507462687)
    assert result.sensitivity.ci == approx_pair((0.9196235494, 0.9996221937))
    assert result.specificity.estimate == approx(0.72222222222)
    assert result.specificity.ci == approx_pair((0.4651980344, 0.9030507875))
    assert (result.ppv.k, result.ppv.n) == (66, 71)
    assert result.ppv.estimate == approx(0.92957746479)
    assert result.ppv.ci == approx_pair((0.8432582827, 0.9767397191))
    assert result.npv.estimate == approx(0.92857142857)
    assert result.npv.ci == approx_pair((0.6613155101, 0.9981932193))
    assert result.lr_positive.estimate == approx(3.54626865672)
    assert result.lr_positive.ci == approx_pair((1.682721066, 7.473622124))
    assert result.lr_negative.estimate == approx(0.02066590126)
    assert result.lr_negative.ci == approx_pair((0.002892780127, 0.1476363416))
    assert result.p == approx(1.51890969247e-10)
    assert result.note is None


def test_ppv_displays_as_93_0_percent_not_the_papers_92_9():
    """By hand: 66/71 = 0.929577... -> 93.0 % (the paper prints 92.9 %)."""
    assert format_n_percent(66, 71) == "66 (93.0%)"


def test_a_specificity_of_one_gives_an_infinite_lr_positive_reported_as_null():
    """TP 10, FP 0, FN 2, TN 5. R epi.tests(method = "exact"): sp 1 (0.4781762499, 1),
    lr.pos Inf (NaN, Inf) -> null with a note, lr.neg 0.1666666667 (0.04703276554,
    0.5906048148); fisher.test p 0.00339366515837."""
    result = diagnostic_accuracy(tp=10, fp=0, fn=2, tn=5)
    assert result.specificity.estimate == 1.0
    assert result.specificity.ci == (approx(0.4781762499), 1.0)
    assert result.lr_positive.estimate is None and result.lr_positive.ci is None
    assert "infinite" in result.lr_positive.note
    assert result.lr_negative.estimate == approx(0.1666666667)
    assert result.lr_negative.ci == approx_pair((0.04703276554, 0.5906048148))
    assert result.p == approx(0.00339366515837)
    assert "LR+" in result.note


def test_a_sensitivity_of_one_gives_lr_negative_zero_without_a_log_ci():
    """TP 10, FP 2, FN 0, TN 5. R epi.tests(method = "exact"): se 1 (0.69150289218, 1),
    lr.pos 3.5 (1.08487031522, 11.2916722194), lr.neg 0 (0, NaN): estimate 0, CI null."""
    result = diagnostic_accuracy(tp=10, fp=2, fn=0, tn=5)
    assert result.sensitivity.estimate == 1.0
    assert result.sensitivity.ci == (approx(0.69150289218), 1.0)
    assert result.lr_positive.estimate == approx(3.5)
    assert result.lr_positive.ci == approx_pair((1.08487031522, 11.2916722194))
    assert result.lr_negative.estimate == 0.0
    assert result.lr_negative.ci is None
    assert "LR-" in result.lr_negative.note


def test_a_reference_class_with_nobody_leaves_its_statistics_null():
    """No reference-negative patient: specificity 0/0 is null, LRs not estimable, Fisher
    p = 1 (empty column); sensitivity 5/8 from binom.test(5, 8) = 0.2448634 0.9147666."""
    result = diagnostic_accuracy(tp=5, fp=0, fn=3, tn=0)
    assert result.specificity.estimate is None and result.specificity.ci is None
    assert result.lr_positive.estimate is None and result.lr_negative.estimate is None
    assert result.p == 1.0
    assert result.sensitivity.ci == approx_pair((0.2448634, 0.9147666), rel=1e-6)


# --------------------------------------------------------------------------- descriptives


def test_describe_matches_r_mean_sd_and_both_percentile_definitions():
    """R: x = c(28, 55, 60, 64, 64, 70, 72, 81, 101, NA); mean 66.11111111, sd 19.71956164,
    quantile(type = 7) 60 64 72, quantile(type = 6) 57.5 64 76.5 (numpy "weibull")."""
    values = [28, 55, 60, 64, 64, 70, 72, 81, 101, None]
    result = describe(values)
    assert (result.n, result.missing) == (9, 1)
    assert result.mean == approx(66.11111111)
    assert result.sd == approx(19.71956164)
    assert (result.q1, result.median, result.q3) == (60.0, 64.0, 72.0)
    assert (result.min, result.max) == (28.0, 101.0)
    assert result.percentile_method == "linear"
    stata = describe(values, percentile_method="weibull")
    assert (stata.q1, stata.median, stata.q3) == (57.5, 64.0, 76.5)


def test_describe_of_nothing_and_of_one_value():
    """No value: every statistic null; one value: SD (ddof = 1) undefined."""
    empty = describe([None, float("nan")])
    assert (empty.n, empty.missing, empty.mean, empty.median) == (0, 2, None, None)
    single = describe([42])
    assert (single.n, single.mean, single.sd, single.q1) == (1, 42.0, None, 42.0)


# --------------------------------------------------------------------------- regression


def _data(name):
    frame = pd.read_csv(REFERENCE / f"regression_{name}.csv")
    return frame.pop("y"), frame


def _term(result, key):
    return next(t for t in result.terms if t.key == key)


def test_regression_without_separation_and_enough_events_is_maximum_likelihood():
    """regression_ml.csv (200 patients, 95 events, 4 covariates: 95/4 = 23.75 events per
    covariate). R glm(y ~ ., binomial) with exp(confint.default()) and Wald p
    (regression_reference.txt): age_70_plus 2.3348638852 (1.2196767565, 4.4697001342)
    p 0.010486846410; posterior_circulation 1.7070732293 (0.9065595339, 3.2144596149)
    p 0.097688954138; onset_over_6h 2.4056025371 (1.3216532068, 4.3785491811) p
    0.004070917049; procedure_over_60min 1.0927035725 (0.6092163918, 1.9598965382) p
    0.766149982126. rel=1e-5: statsmodels' and R's Newton stop at different iterations."""
    y, X = _data("ml")
    result = logistic_regression(y, X)
    assert result.method == "logit"
    assert "no separation" in result.reason and "23.8 events per covariate" in result.reason
    assert (result.n, result.events) == (200, 95)
    assert result.events_per_covariate == approx(23.75)
    assert [t.key for t in result.terms] == list(X.columns)
    expected = {
        "age_70_plus": (2.3348638852, 1.2196767565, 4.4697001342, 0.010486846410),
        "posterior_circulation": (1.7070732293, 0.9065595339, 3.2144596149, 0.097688954138),
        "onset_over_6h": (2.4056025371, 1.3216532068, 4.3785491811, 0.004070917049),
        "procedure_over_60min": (1.0927035725, 0.6092163918, 1.9598965382, 0.766149982126),
    }
    for key, (odds, low, high, p) in expected.items():
        term = _term(result, key)
        assert term.odds_ratio == approx(odds, rel=1e-5)
        assert term.ci == approx_pair((low, high), rel=1e-5)
        assert term.p == approx(p, rel=1e-5)


def test_quasi_complete_separation_switches_to_firth_and_names_the_covariate():
    """regression_quasi.csv: every patient with sICH had a poor outcome (quasi-complete
    separation). Firth reference coded in R (regression_reference.R, logistf's algorithm):
    sich OR 31.73353284 (3.325035086, 4282.108589) p 0.0007991920982; age_70_plus OR
    4.493301871 (1.455863792, 15.00084849) p 0.008555821852."""
    y, X = _data("quasi")
    assert detect_separation(y, X) == ["sich"]
    result = logistic_regression(y, X)
    assert result.method == "firth"
    assert result.separated == ("sich",)
    assert "separation: sich" in result.reason and "events per covariate" in result.reason
    assert (result.n, result.events) == (60, 30)
    sich, age = _term(result, "sich"), _term(result, "age_70_plus")
    assert sich.odds_ratio == approx(31.73353284, rel=REL_FIRTH)
    assert sich.ci == approx_pair((3.325035086, 4282.108589), rel=REL_FIRTH)
    assert sich.p == approx(0.0007991920982, rel=REL_FIRTH)
    assert age.odds_ratio == approx(4.493301871, rel=REL_FIRTH)
    assert age.ci == approx_pair((1.455863792, 15.00084849), rel=REL_FIRTH)
    assert age.p == approx(0.008555821852, rel=REL_FIRTH)


def test_complete_separation_is_fitted_by_firth_with_finite_estimates():
    """regression_complete.csv: the outcome equals decompressive_craniectomy. R Firth code
    (regression_reference.txt): decompressive_craniectomy OR 347.3116885 (23.60981107,
    52102.10829) p 1.843527025e-07; female OR 0.7556865428 (0.003987888503, 147.7956565)
    p 0.8906405321. 8 events / 2 covariates = 4 per covariate."""
    y, X = _data("complete")
    result = logistic_regression(y, X)
    assert result.method == "firth"
    assert result.separated == ("decompressive_craniectomy",)
    assert result.events_per_covariate == approx(4.0)
    dc, female = _term(result, "decompressive_craniectomy"), _term(result, "female")
    assert dc.odds_ratio == approx(347.3116885, rel=REL_FIRTH)
    assert dc.ci == approx_pair((23.60981107, 52102.10829), rel=REL_FIRTH)
    assert dc.p == approx(1.843527025e-07, rel=REL_FIRTH)
    assert female.odds_ratio == approx(0.7556865428, rel=REL_FIRTH)
    assert female.ci == approx_pair((0.003987888503, 147.7956565), rel=REL_FIRTH)
    assert female.p == approx(0.8906405321, rel=REL_FIRTH)


def test_firth_on_a_two_by_two_with_a_zero_cell_is_the_haldane_odds_ratio():
    """Hand calculation: for one binary covariate Firth's estimate is the log OR of the
    table with 0.5 added to each cell: exposed 4 events/0 non-events, unexposed 3/7 ->
    (4.5 * 7.5) / (0.5 * 3.5) = 19.2857142857. Profile CI and penalized LR p from the R
    Firth code: (1.432809764, 2843.460429), p 0.0229925202."""
    y, X = _data("2x2")
    result = logistic_regression(y, X)
    assert result.method == "firth"
    term = _term(result, "x")
    assert term.odds_ratio == approx(4.5 * 7.5 / (0.5 * 3.5), rel=REL_FIRTH)
    assert term.ci == approx_pair((1.432809764, 2843.460429), rel=REL_FIRTH)
    assert term.p == approx(0.0229925202, rel=REL_FIRTH)


def test_few_events_per_covariate_switches_to_firth_and_says_so():
    """regression_few_events.csv: no separation, 12 events / 3 covariates = 4 < 10. R Firth
    code: age_70_plus OR 2.846035101 (0.7887415297, 10.88037767) p 0.1099747261;
    posterior_circulation 1.31695281 (0.3538140716, 4.953649156) p 0.6778515781;
    onset_over_6h 0.6437885621 (0.1670549425, 2.361640509) p 0.5059192896."""
    y, X = _data("few_events")
    result = logistic_regression(y, X)
    assert result.method == "firth"
    assert result.separated == ()
    assert "only 4.0 events per covariate (< 10)" in result.reason
    expected = {
        "age_70_plus": (2.846035101, 0.7887415297, 10.88037767, 0.1099747261),
        "posterior_circulation": (1.31695281, 0.3538140716, 4.953649156, 0.6778515781),
        "onset_over_6h": (0.6437885621, 0.1670549425, 2.361640509, 0.5059192896),
    }
    for key, (odds, low, high, p) in expected.items():
        term = _term(result, key)
        assert term.odds_ratio == approx(odds, rel=REL_FIRTH)
        assert term.ci == approx_pair((low, high), rel=REL_FIRTH)
        assert term.p == approx(p, rel=REL_FIRTH)
    forced = logistic_regression(y, X, method="logit")
    assert forced.method == "logit" and "requested" in forced.reason


def test_forcing_maximum_likelihood_on_separated_data_is_not_estimable():
    """The ML estimate is infinite under separation: refuse rather than print a huge OR."""
    y, X = _data("quasi")
    result = logistic_regression(y, X, method="logit")
    assert result.method == "not_estimable"
    assert "separation" in result.reason
    assert all(t.odds_ratio is None for t in result.terms)
    assert [t.key for t in result.terms] == ["sich", "age_70_plus"]


def test_detect_separation_checks_levels_of_binary_and_thresholds_of_numeric_covariates():
    """By hand: x1 level 1 has only events (quasi-complete); x2 has events and non-events
    at both levels; age splits the outcome at 70 (complete); a constant is not listed."""
    y = [1, 1, 0, 1, 0, 0]
    X = pd.DataFrame(
        {
            "x1": [1, 1, 0, 0, 0, 0],
            "x2": [1, 0, 1, 1, 0, 1],
            "age": [75, 80, 50, 71, 60, 65],
            "const": [1] * 6,
        }
    )
    assert detect_separation(y, X) == ["x1", "age"]


def test_a_covariate_without_variation_is_kept_as_a_null_term_not_dropped():
    """Never drop a covariate silently: it stays in terms with a null OR and a note."""
    y, X = _data("ml")
    X = X.assign(hypertension=1)
    result = logistic_regression(y, X)
    assert [t.key for t in result.terms][-1] == "hypertension"
    assert _term(result, "hypertension").odds_ratio is None
    assert "hypertension" in result.note
    assert result.events_per_covariate == approx(95 / 4)


def test_patients_with_a_missing_value_are_excluded_and_counted():
    """Complete-case analysis: two missing values -> n 198 and 2 excluded, stated."""
    y, X = _data("ml")
    X = X.astype(float)
    X.loc[0, "age_70_plus"] = None
    y = y.astype(float)
    y[1] = None
    result = logistic_regression(y, X)
    assert (result.n, result.n_excluded_missing) == (198, 2)
    assert "2 patient(s) excluded" in result.note


def _distinct_rows(y, X):
    """The rows of (y, X) given once each, with how many patients each stands for."""
    frame = X.astype(float).assign(__y__=pd.Series(y, index=X.index, dtype=float))
    counted = frame.groupby(list(frame.columns), dropna=False).size().reset_index(name="n")
    return counted.pop("__y__"), counted.drop(columns="n"), counted["n"].to_numpy()


@pytest.mark.parametrize("name", ["ml", "quasi", "complete", "few_events", "2x2"])
def test_distinct_rows_with_their_counts_give_the_fit_of_the_repeated_rows(name):
    """Frequency weights (Stata fweight, R glm/logistf weights) are repetition: the same
    method, counts, ORs, CIs and p whether the rows come once per patient or once with
    their count. Both fits converge to 1e-10 (Logit) or firthmodels' 1e-5, so rel=1e-6."""
    y, X = _data(name)
    y_rows, X_rows, counts = _distinct_rows(y, X)
    assert len(X_rows) < len(X)  # the data do repeat rows
    each, weighted = (
        logistic_regression(y, X),
        logistic_regression(y_rows, X_rows, freq_weights=counts),
    )
    assert (weighted.method, weighted.reason, weighted.separated) == (
        each.method,
        each.reason,
        each.separated,
    )
    assert (weighted.n, weighted.events, weighted.events_per_covariate) == (
        each.n,
        each.events,
        each.events_per_covariate,
    )
    for one, other in zip(each.terms, weighted.terms, strict=True):
        assert other.key == one.key
        assert other.odds_ratio == approx(one.odds_ratio, rel=1e-6)
        assert other.ci == approx_pair(one.ci, rel=1e-6)
        assert other.p == approx(one.p, rel=1e-6)


def test_patients_excluded_for_a_missing_value_are_counted_by_their_weight():
    """A row with a missing value standing for 3 patients excludes 3 patients."""
    y, X = _data("ml")
    X = X.astype(float)
    X.loc[0, "age_70_plus"] = None
    weights = [3] + [1] * (len(X) - 1)
    result = logistic_regression(y, X, freq_weights=weights)
    assert (result.n, result.n_excluded_missing) == (199, 3)
    assert "3 patient(s) excluded" in result.note


@pytest.mark.parametrize("weights", [[0, 1, 1, 1], [1.5, 1, 1, 1], [1, 1, 1], [-1, 1, 1, 1]])
def test_frequency_weights_must_be_whole_patients_one_per_row(weights):
    X = pd.DataFrame({"x": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match="freq_weights"):
        logistic_regression([0, 1, 1, 0], X, freq_weights=weights)


def test_an_outcome_without_variation_is_not_estimable():
    result = logistic_regression([1, 1, 1], pd.DataFrame({"x": [0, 1, 0]}))
    assert result.method == "not_estimable"
    assert result.terms == (stats.RegressionTerm("x", None, None, None),)
