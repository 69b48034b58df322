"""Statistics of the study tables: pure functions on counts and arrays.

Every method follows ``../shared/spec/statistical-methods.md``: the library call that
Stata / R reproduce, with each library default spelled out. Nothing here imports Django,
so the module can be tested (and reused) without a database.

Conventions
-----------
* A value that cannot be estimated is ``None`` (never NaN or infinity, which JSON cannot
  carry) and the result's ``note`` says why.
* Confidence intervals are ``(low, high)`` tuples of plain floats at 95 %.
* Counts are plain ``int``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import numpy as np


from .formatting import format_decimal

Z = 1.959964
"""Two-sided 95 % normal quantile, as written in the spec (scipy's ppf(0.975) = 1.95996398)."""

CONFIDENCE = 0.95

P_METHODS = ("fisher", "wald")
CORRECTIONS = (None, "haldane")


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Interval:
    """A confidence interval; a bound is ``None`` when not estimable (or infinite)."""

    low: float | None
    high: float | None


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with an exact Clopper-Pearson 95 % CI; null when ``n == 0``."""

    k: int
    n: int
    estimate: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Ratio:
    """A ratio estimate (e.g. a likelihood ratio) with its CI and why either is null."""

    estimate: float | None
    ci: tuple[float, float] | None
    note: str | None = None


@dataclass(frozen=True)
class NNInterval:
    """Altman's (1998) confidence interval of the number needed to treat / harm.

    Two shapes:

    * plain (``disjoint`` False): the RD interval lies on one side of 0, so the NN
      interval is ``low`` to ``high`` patients, all of kind ``kind`` ("nnt" or "nnh").
      ``high`` is ``None`` (infinite) when one RD limit is exactly 0.
    * disjoint (``disjoint`` True): the RD interval contains 0, so the NN interval is
      "NNTB ``nntb`` to infinity to NNTH ``nnth``" (``low``/``high``/``kind`` are None).

    Bounds are unrounded reciprocals of the RD limits; the display form is
    ``analytics.formatting.format_nn_interval``.
    """

    disjoint: bool
    kind: str | None = None
    low: float | None = None
    high: float | None = None
    nntb: float | None = None
    nnth: float | None = None


@dataclass(frozen=True)
class RiskComparison:
    """Exposed vs unexposed risk of a binary outcome (one Table I / Table III row).

    ``a`` of ``n1`` exposed and ``c`` of ``n0`` unexposed patients had the event.
    """

    a: int
    n1: int
    c: int
    n0: int
    risk_exposed: float | None
    risk_unexposed: float | None
    rr: float | None
    rr_ci: tuple[float, float] | None
    rd: float | None
    rd_ci: tuple[float, float] | None
    odds_ratio: float | None
    or_ci: tuple[float, float] | None
    p: float | None
    p_method: str
    nnt: int | None
    nnh: int | None
    nn_unrounded: float | None
    nn_ci: NNInterval | None
    correction: str | None
    note: str | None

    @property
    def n(self) -> int:
        """Patients analysed in the row."""
        return self.n1 + self.n0

    @property
    def table(self) -> list[list[int]]:
        """The 2x2 table ``[[a, b], [c, d]]`` (rows exposed/unexposed, columns event/none)."""
        return _table(self.a, self.n1, self.c, self.n0)


@dataclass(frozen=True)
class DiagnosticAccuracy:
    """Accuracy of a test against a reference standard (Tables II and IV)."""

    tp: int
    fp: int
    fn: int
    tn: int
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion
    lr_positive: Ratio
    lr_negative: Ratio
    p: float
    note: str | None

    @property
    def n(self) -> int:
        """Patients with both the test and the reference recorded."""
        return self.tp + self.fp + self.fn + self.tn


@dataclass(frozen=True)
class Descriptives:
    """Summary of a continuous variable; statistics are ``None`` when undefined."""

    n: int
    missing: int
    mean: float | None
    sd: float | None
    median: float | None
    q1: float | None
    q3: float | None
    min: float | None
    max: float | None
    percentile_method: str


# --------------------------------------------------------------------------- proportions


def proportion(k: int, n: int) -> Proportion:
    """Proportion ``k/n`` with the exact Clopper-Pearson 95 % CI.

    Parameters
    ----------
    k, n : int
        Events and denominator, ``0 <= k <= n``.

    Returns
    -------
    Proportion
        Estimate and CI are ``None`` when ``n == 0``.

    Notes
    -----
    ``proportion_confint(k, n, alpha=0.05, method="beta")`` equals R
    ``binom.test``/``epiR::epi.tests(method = "exact")`` and Stata ``cii, exact``.
    """
    from statsmodels.stats.proportion import proportion_confint

    k, n = int(k), int(n)
    _check_counts(k, n)
    if n == 0:
        return Proportion(k=k, n=n, estimate=None, ci=None)
    low, high = proportion_confint(k, n, alpha=1 - CONFIDENCE, method="beta")
    return Proportion(k=k, n=n, estimate=k / n, ci=(float(low), float(high)))


# --------------------------------------------------------------------------- 2x2 risk tables


def compare_risks(
    a: int,
    n1: int,
    c: int,
    n0: int,
    *,
    p_method: str = "fisher",
    correction: str | None = None,
    outcome_adverse: bool = True,
) -> RiskComparison:
    """Risk ratio, risk difference, NNT/NNH, odds ratio and p of one exposure.

    Parameters
    ----------
    a, n1 : int
        Exposed patients with the event, and all exposed patients.
    c, n0 : int
        Unexposed patients with the event, and all unexposed patients.
    p_method : {"fisher", "wald"}
        ``"fisher"``: two-sided Fisher exact test (R ``fisher.test``). ``"wald"``:
        z = ln RR / SE(ln RR) with the Katz SE, the test that reproduces the paper's
        Table I p-values.
    correction : {None, "haldane"}
        ``"haldane"`` adds 0.5 to all four cells of a table with a zero cell before the
        RR, OR and Wald p (never to the counts, the RD or Fisher's p). Default: none.
    outcome_adverse : bool
        True for an outcome to avoid (poor mRS, sICH, new infarct): RD > 0 is harm
        (NNH) and RD < 0 benefit (NNT). False flips the roles.

    Returns
    -------
    RiskComparison
        Non-estimable statistics are ``None`` and ``note`` says why.

    Notes
    -----
    RR: Katz log CI, ``scipy.stats.contingency.relative_risk`` (Stata ``cs``, R
    ``epiR::epi.2by2``). RD: Wald CI, ``confint_proportions_2indep(method="wald")``.
    NN CI: Altman (1998), BMJ 317:1309. OR: Woolf CI, ``odds_ratio(kind="sample")``.
    """
    a, n1, c, n0 = (int(x) for x in (a, n1, c, n0))  # numpy integers are not JSON
    for k, n in ((a, n1), (c, n0)):
        _check_counts(k, n)
    if p_method not in P_METHODS:
        raise ValueError(f"p_method must be one of {P_METHODS}, got {p_method!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")

    notes: list[str] = []
    table = _table(a, n1, c, n0)
    empty_group = n1 == 0 or n0 == 0
    applied = correction if (correction and not empty_group and _has_zero(table)) else None
    if correction and not applied:
        notes.append(
            "Haldane correction requested but not applied ("
            + ("a comparison group is empty)" if empty_group else "no zero cell)")
        )
    if applied:
        notes.append("Haldane correction: 0.5 added to all four cells for RR, OR and Wald p")

    rr, rr_ci = _risk_ratio(table, applied, empty_group, notes)
    odds, or_ci = _odds_ratio(table, applied, empty_group, notes)
    rd, rd_ci = _risk_difference(a, n1, c, n0)
    if rd is not None and rd_ci is None:
        notes.append("RD CI not estimable: every patient or no patient of each group had the event")
    p = _p_value(table, p_method, applied, notes)
    nnt, nnh, nn_unrounded = _number_needed(rd, outcome_adverse)
    if rd == 0:
        notes.append("RD = 0: number needed is infinite")
    return RiskComparison(
        a=a,
        n1=n1,
        c=c,
        n0=n0,
        risk_exposed=a / n1 if n1 else None,
        risk_unexposed=c / n0 if n0 else None,
        rr=rr,
        rr_ci=rr_ci,
        rd=rd,
        rd_ci=rd_ci,
        odds_ratio=odds,
        or_ci=or_ci,
        p=p,
        p_method=p_method,
        nnt=nnt,
        nnh=nnh,
        nn_unrounded=nn_unrounded,
        nn_ci=nn_interval(rd_ci, outcome_adverse=outcome_adverse),
        correction=applied,
        note="; ".join(notes) or None,
    )


def _table(a: int, n1: int, c: int, n0: int) -> list[list[int]]:
    return [[a, n1 - a], [c, n0 - c]]


def _has_zero(table: list[list[int]]) -> bool:
    return any(cell == 0 for row in table for cell in row)


def _check_counts(k: int, n: int) -> None:
    if not (0 <= k <= n):
        raise ValueError(f"counts must satisfy 0 <= k <= n, got k={k}, n={n}")


def _finite_pair(low: float, high: float) -> tuple[float, float] | None:
    if math.isfinite(low) and math.isfinite(high):
        return (float(low), float(high))
    return None


def _risk_ratio(table, correction, empty_group, notes):
    """Katz RR; a zero event cell or an empty group makes it not estimable."""
    import numpy as np
    from scipy.stats.contingency import relative_risk as _scipy_relative_risk
    from statsmodels.stats.contingency_tables import Table2x2

    (a, b), (c, d) = table
    if empty_group:
        notes.append("RR not estimable: a comparison group is empty")
        return None, None
    if correction == "haldane":
        # scipy's relative_risk takes integer counts only; statsmodels' Table2x2 gives the
        # same Katz estimate and CI on the corrected (non-integer) table.
        t = Table2x2(np.asarray(table, dtype=float) + 0.5, shift_zeros=False)
        low, high = t.riskratio_confint(alpha=1 - CONFIDENCE, method="normal")
        return float(t.riskratio), (float(low), float(high))
    if a == 0 or c == 0:
        where = "either group" if a == c == 0 else "the exposed" if a == 0 else "the unexposed"
        notes.append(f"RR not estimable: no event in {where}")
        return None, None
    if b == d == 0:
        # Both risks are 1: SE(ln RR) is 0 and the Katz CI would be the point 1.0-1.0, a
        # precision the data do not have.
        notes.append("RR not estimable: every patient in both groups had the event")
        return None, None
    result = _scipy_relative_risk(a, a + b, c, c + d)
    ci = result.confidence_interval(confidence_level=CONFIDENCE)
    return float(result.relative_risk), _finite_pair(ci.low, ci.high)


def _odds_ratio(table, correction, empty_group, notes):
    """Woolf OR; any zero cell (without correction) makes it 0 or infinite: null."""
    import numpy as np
    from scipy.stats.contingency import odds_ratio as _scipy_odds_ratio
    from statsmodels.stats.contingency_tables import Table2x2

    if empty_group:
        return None, None
    if correction == "haldane":
        t = Table2x2(np.asarray(table, dtype=float) + 0.5, shift_zeros=False)
        low, high = t.oddsratio_confint(alpha=1 - CONFIDENCE, method="normal")
        return float(t.oddsratio), (float(low), float(high))
    if _has_zero(table):
        notes.append("OR not estimable: a zero cell")
        return None, None
    result = _scipy_odds_ratio(table, kind="sample")
    ci = result.confidence_interval(confidence_level=CONFIDENCE, alternative="two-sided")
    return float(result.statistic), _finite_pair(ci.low, ci.high)


def _risk_difference(a, n1, c, n0):
    """Wald RD; statsmodels' default is Newcombe, hence the explicit ``method``."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    if n1 == 0 or n0 == 0:
        return None, None
    rd = a / n1 - c / n0
    if a in (0, n1) and c in (0, n0):
        # Each risk is 0 or 1: the Wald SE is 0 and the CI a single point (false precision).
        return rd, None
    low, high = confint_proportions_2indep(
        a, n1, c, n0, compare="diff", method="wald", alpha=1 - CONFIDENCE
    )
    return rd, (float(low), float(high))


def _p_value(table, p_method, correction, notes) -> float | None:
    """Fisher (default) or Katz-Wald p; a table with an empty row or column has p = 1."""
    import numpy as np
    from scipy.stats import fisher_exact
    from statsmodels.stats.contingency_tables import Table2x2

    rows = [sum(r) for r in table]
    cols = [table[0][j] + table[1][j] for j in range(2)]
    if 0 in rows or 0 in cols:
        # No information on association: both tests are conventionally 1 here.
        return 1.0
    if p_method == "fisher":
        return float(fisher_exact(table, alternative="two-sided").pvalue)
    counts = np.asarray(table, dtype=float) + (0.5 if correction == "haldane" else 0.0)
    if (counts[:, 0] == 0).any():
        notes.append("Wald p not estimable: ln RR is infinite with a zero event cell")
        return None
    return float(Table2x2(counts, shift_zeros=False).riskratio_pvalue())


def _number_needed(rd: float | None, outcome_adverse: bool):
    """NNT/NNH = 1/|RD| rounded up to a whole patient; which one depends on the outcome."""
    if rd is None or rd == 0:
        return None, None, None
    unrounded = 1 / abs(rd)
    # ceil on a float like 1/0.25 = 4.000000000000001 must give 4, hence the rounding.
    whole = math.ceil(round(unrounded, 9))
    harm = (rd > 0) == outcome_adverse
    return (None, whole, unrounded) if harm else (whole, None, unrounded)


def nn_interval(
    rd_ci: tuple[float, float] | None, *, outcome_adverse: bool = True
) -> NNInterval | None:
    """Altman's (1998) CI for the number needed: reciprocals of the RD limits.

    Parameters
    ----------
    rd_ci : (float, float) or None
        Wald CI of the risk difference (exposed minus unexposed).
    outcome_adverse : bool
        True when RD > 0 means harm.

    Returns
    -------
    NNInterval or None
        ``None`` when there is no RD interval or it is the single point 0.
    """
    if rd_ci is None:
        return None
    low, high = rd_ci
    if low == 0 and high == 0:
        return None
    if low < 0 < high:
        # RD limits of each sign: benefit side and harm side, infinity in between.
        benefit, harm = (-low, high) if outcome_adverse else (high, -low)
        return NNInterval(disjoint=True, nntb=1 / benefit, nnth=1 / harm)
    harm = (low >= 0) == outcome_adverse
    largest, smallest = sorted((abs(low), abs(high)), reverse=True)
    return NNInterval(
        disjoint=False,
        kind="nnh" if harm else "nnt",
        low=1 / largest,
        high=None if smallest == 0 else 1 / smallest,
    )


# --------------------------------------------------------------------------- diagnostic tests


def diagnostic_accuracy(tp: int, fp: int, fn: int, tn: int) -> DiagnosticAccuracy:
    """Sensitivity, specificity, predictive values and likelihood ratios of a test.

    Parameters
    ----------
    tp, fp, fn, tn : int
        Test-positive/reference-positive, test-positive/reference-negative,
        test-negative/reference-positive and test-negative/reference-negative counts.

    Returns
    -------
    DiagnosticAccuracy

    Notes
    -----
    Proportions: exact Clopper-Pearson (R ``epiR::epi.tests(method = "exact")``, Stata
    ``diagt``). LR+ and LR-: log method (Simel 1991) through ``relative_risk(TP, TP+FN,
    FP, FP+TN)`` and ``relative_risk(FN, TP+FN, TN, FP+TN)``. ``p``: two-sided Fisher.
    """
    from scipy.stats import fisher_exact

    tp, fp, fn, tn = (int(x) for x in (tp, fp, fn, tn))
    for count in (tp, fp, fn, tn):
        if count < 0:
            raise ValueError("counts must be non-negative")
    notes: list[str] = []
    lr_pos = _likelihood_ratio(tp, tp + fn, fp, fp + tn, "LR+")
    lr_neg = _likelihood_ratio(fn, tp + fn, tn, fp + tn, "LR-")
    notes += [r.note for r in (lr_pos, lr_neg) if r.note]
    table = [[tp, fp], [fn, tn]]
    rows = [tp + fp, fn + tn]
    cols = [tp + fn, fp + tn]
    p = 1.0 if 0 in rows or 0 in cols else float(fisher_exact(table).pvalue)
    return DiagnosticAccuracy(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        sensitivity=proportion(tp, tp + fn),
        specificity=proportion(tn, tn + fp),
        ppv=proportion(tp, tp + fp),
        npv=proportion(tn, tn + fn),
        lr_positive=lr_pos,
        lr_negative=lr_neg,
        p=p,
        note="; ".join(notes) or None,
    )


def _likelihood_ratio(k1: int, n1: int, k0: int, n0: int, name: str) -> Ratio:
    """Ratio of two proportions with the log-method CI; zeros give a stated null."""
    from scipy.stats.contingency import relative_risk as _scipy_relative_risk

    if n1 == 0 or n0 == 0:
        return Ratio(None, None, f"{name} not estimable: no reference-positive or -negative")
    if k0 == 0:
        # Sp = 1 (LR+) or Se = 0 (LR-): division by zero, the ratio is infinite.
        return Ratio(None, None, f"{name} not estimable: infinite (denominator proportion 0)")
    if k1 == 0:
        # Se = 1 (LR-) or Se = 0 (LR+): the ratio is 0 but ln 0 has no log-method CI.
        return Ratio(0.0, None, f"{name} = 0; log-method CI not estimable")
    result = _scipy_relative_risk(k1, n1, k0, n0)
    ci = result.confidence_interval(confidence_level=CONFIDENCE)
    return Ratio(float(result.relative_risk), _finite_pair(ci.low, ci.high))


# --------------------------------------------------------------------------- descriptives


def describe(values: Sequence[float | None], *, percentile_method: str = "linear") -> Descriptives:
    """Mean, SD (ddof = 1), median, quartiles, range and missing count.

    Parameters
    ----------
    values : sequence of float or None
        ``None`` and NaN are missing.
    percentile_method : str
        Passed to ``numpy.percentile(method=...)``: ``"linear"`` (numpy/R type 7
        default) or e.g. ``"weibull"`` (Stata ``centile``/SPSS, R type 6).

    Returns
    -------
    Descriptives
        SD is ``None`` with fewer than 2 values; all statistics ``None`` with none.
    """
    import numpy as np

    # dtype=float turns None into NaN; one vectorised pass, even for a million values.
    values = np.asarray(values, dtype=float)
    arr = values[~np.isnan(values)]
    missing = len(values) - len(arr)
    if not len(arr):
        return Descriptives(0, missing, None, None, None, None, None, None, None, percentile_method)
    q1, median, q3 = np.percentile(arr, [25, 50, 75], method=percentile_method)
    return Descriptives(
        n=len(arr),
        missing=missing,
        mean=float(arr.mean()),
        sd=float(arr.std(ddof=1)) if len(arr) > 1 else None,
        median=float(median),
        q1=float(q1),
        q3=float(q3),
        min=float(arr.min()),
        max=float(arr.max()),
        percentile_method=percentile_method,
    )


# --------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class RegressionTerm:
    """One covariate of the logistic model: adjusted OR, 95 % CI and p."""

    key: str
    odds_ratio: float | None
    ci: tuple[float, float] | None
    p: float | None
    note: str | None = None


@dataclass(frozen=True)
class RegressionResult:
    """A multivariable logistic regression and the account of how it was fitted.

    ``method`` is "logit" (maximum likelihood, Wald CI and p), "firth" (penalized
    likelihood, profile-likelihood CI, penalized likelihood-ratio p) or
    "not_estimable"; ``reason`` says why that method ran. ``ci_method`` and
    ``p_method`` name the CI and p of that method (None when not estimable);
    ``c_statistic`` is the area under the ROC curve of the fitted linear predictor
    on the patients fitted.
    """

    outcome: str
    method: str
    reason: str
    n: int
    events: int
    events_per_covariate: float | None
    terms: tuple[RegressionTerm, ...]
    note: str | None
    covariates: tuple[str, ...] = ()
    separated: tuple[str, ...] = ()
    n_excluded_missing: int = 0
    c_statistic: float | None = None

    @property
    def ci_method(self) -> str | None:
        return REGRESSION_CI_METHODS.get(self.method)

    @property
    def p_method(self) -> str | None:
        return REGRESSION_P_METHODS.get(self.method)


# The CI and p of each regression method, as the JSON contract names them.
REGRESSION_CI_METHODS = {"logit": "wald", "firth": "profile-likelihood"}
REGRESSION_P_METHODS = {"logit": "wald", "firth": "penalized-likelihood-ratio"}

REGRESSION_METHODS = ("auto", "logit", "firth")

# logistf's logistf.control()/logistf.pl.control() defaults, so that Firth fits converge
# as tightly as the R reference (firthmodels' own defaults are 1e-4).
FIRTH_MAX_ITER = 25
FIRTH_TOL = 1e-5
FIRTH_PL_MAX_ITER = 100
# R glm.control()'s epsilon is 1e-8 on the deviance; statsmodels' IRLS stops on the
# change of the deviance too. 1e-10 makes the weighted fit agree with Logit on the
# repeated rows to 1e-9 (standard errors included), not only to 1e-7.
LOGIT_MAX_ITER = 100
LOGIT_TOL = 1e-10


def detect_separation(y: Sequence[int], X) -> list[str]:
    """Covariates that on their own separate the outcome (complete or quasi-complete).

    Parameters
    ----------
    y : sequence of int
        Binary outcome (0/1).
    X : pandas.DataFrame
        Numeric covariates. Patients with a missing outcome or covariate are left out,
        as in :func:`logistic_regression`.

    Returns
    -------
    list of str
        Columns, in order, with a level having all or no events (a binary covariate)
        or, for a covariate with more than two values, a threshold that splits events
        from non-events with at most ties (``max(x | y=0) <= min(x | y=1)`` or the
        reverse): the maximum-likelihood OR of such a covariate is 0 or infinite.
        Constant columns are not listed (they carry no information at all).

    Notes
    -----
    Separation by a combination of covariates is found by
    :func:`logistic_regression` with ``firthmodels.detect_separation`` (Konis 2007).
    """
    import numpy as np

    frame = X.astype(float).assign(__y__=np.asarray(list(y), dtype=float)).dropna()
    y_arr = frame.pop("__y__").to_numpy(dtype=int)
    separated = []
    for column in frame.columns:
        x = frame[column].to_numpy(dtype=float)
        if len(np.unique(x)) < 2:
            continue
        if _column_separates(x, y_arr):
            separated.append(str(column))
    return separated


def _column_separates(x: np.ndarray, y: np.ndarray) -> bool:
    import numpy as np

    levels = np.unique(x)
    if len(levels) == 2:
        # A level where every patient, or no patient, had the event.
        return any(y[x == level].min() == y[x == level].max() for level in levels)
    with_event, without = x[y == 1], x[y == 0]
    if len(with_event) == 0 or len(without) == 0:
        return True
    return bool(without.max() <= with_event.min() or with_event.max() <= without.min())


def logistic_regression(
    y: Sequence[int],
    X,
    *,
    outcome: str = "poor_outcome_3m",
    method: str = "auto",
    min_events_per_covariate: float = 10.0,
    freq_weights: Sequence[int] | None = None,
) -> RegressionResult:
    """Multivariable logistic regression of a binary outcome, ML or Firth.

    Parameters
    ----------
    y : sequence of int
        Outcome (1 = event); ``None``/NaN is missing.
    X : pandas.DataFrame
        One numeric column per covariate (the column name is the term's key); NaN is
        missing. An intercept is added.
    outcome : str
        Name of the outcome, echoed in the result.
    method : {"auto", "logit", "firth"}
        ``"auto"``: Firth when a covariate separates the outcome (alone or jointly) or
        there are fewer than ``min_events_per_covariate`` events per covariate,
        otherwise maximum likelihood. ``"logit"`` / ``"firth"`` force the method (a
        forced Logit on separated data is not estimable).
    min_events_per_covariate : float
        Threshold of the events-per-covariate rule (Peduzzi 1996: 10).
    freq_weights : sequence of int, optional
        How many patients each row stands for (frequency weights: Stata's ``fweight``,
        R ``glm``'s and ``logistf``'s ``weights``); one each by default. A row given
        once with its count is fitted exactly as the row repeated: the study tables
        pass a registry's distinct rows (a few dozen) instead of one per patient.

    Returns
    -------
    RegressionResult
        Patients with a missing outcome or covariate are excluded (complete cases) and
        counted in ``n_excluded_missing``. A covariate without variation is kept as a
        term with a null OR and a note, never dropped silently.

    Notes
    -----
    Events per covariate counts the rarer outcome class, ``min(events, n - events)``,
    divided by the number of covariates fitted. ML: ``statsmodels`` ``GLM`` with the
    binomial family and its canonical logit link, fitted by IRLS: the estimator of
    ``Logit`` (Stata ``logit``, R ``glm(family = binomial)``), which unlike ``Logit``
    takes frequency weights; OR = exp(b) with Wald CI and p. Firth: ``firthmodels``
    ``FirthLogisticRegression`` (R ``logistf``): profile-likelihood CI and penalized
    likelihood-ratio p.
    """
    if method not in REGRESSION_METHODS:
        raise ValueError(f"method must be one of {REGRESSION_METHODS}, got {method!r}")
    y_arr, complete, weights, excluded = _complete_cases(y, X, freq_weights)
    covariates = tuple(str(c) for c in complete.columns)
    n, events = int(weights.sum()), int(weights[y_arr == 1].sum())
    notes = [f"{excluded} patient(s) excluded for a missing value"] if excluded else []
    constant = [c for c in complete.columns if complete[c].nunique() < 2] if n else []
    if constant:
        notes.append("no variation, OR not estimable: " + ", ".join(map(str, constant)))
    fitted = complete.drop(columns=constant)
    epc = min(events, n - events) / fitted.shape[1] if fitted.shape[1] else None
    header = dict(outcome=outcome, n=n, events=events, events_per_covariate=epc)
    header.update(covariates=covariates, n_excluded_missing=excluded)

    if n == 0:
        # Not "the outcome does not vary": there is nothing to vary.
        why = "no patient has the outcome and every covariate recorded"
        return _not_estimable(header, why, notes)
    if events in (0, n) or fitted.shape[1] == 0:
        why = "the outcome does not vary" if events in (0, n) else "no covariate varies"
        return _not_estimable(header, why, notes)
    # Separation depends on which rows occur, not on how often: weights play no part.
    separated = detect_separation(y_arr, fitted)
    header["separated"] = tuple(separated)
    joint = _joint_separation(y_arr, fitted, weights)
    if joint is None:
        return _not_estimable(header, "the covariates are collinear", notes)
    method_run, reason = _choose_method(method, separated, joint, epc, min_events_per_covariate)
    if method_run == "not_estimable":
        return _not_estimable(header, reason, notes)

    fit = _fit_logit if method_run == "logit" else _fit_firth
    fitted_terms, fit_notes, linear = fit(y_arr, fitted, weights)
    header["c_statistic"] = c_statistic(y_arr, linear, freq_weights=weights)
    by_key = {t.key: t for t in fitted_terms}
    # Every requested covariate comes back as a term, in the requested order.
    terms = tuple(
        by_key.get(c, RegressionTerm(c, None, None, None, "no variation")) for c in covariates
    )
    note = "; ".join([*notes, *fit_notes]) or None
    return RegressionResult(method=method_run, reason=reason, terms=terms, note=note, **header)


def _complete_cases(y, X, freq_weights=None):
    """Outcome array, covariate frame, weights and number of patients excluded,
    keeping complete cases only."""
    import numpy as np
    import pandas as pd  # heavy: imported only by the regression

    # astype(float) raises on a text column instead of turning it into missing values.
    frame = pd.DataFrame(X).astype(float)
    frame.insert(0, "__y__", pd.Series(list(y), index=frame.index, dtype=object).astype(float))
    weights = np.ones(len(frame)) if freq_weights is None else np.asarray(freq_weights, float)
    if weights.shape != (len(frame),) or not (
        np.all(weights >= 1) and np.all(weights == np.round(weights))
    ):
        raise ValueError("freq_weights: one whole number >= 1 per row (patients per row)")
    keep = frame.notna().all(axis=1).to_numpy()
    complete = frame[keep]
    y_arr = complete.pop("__y__").to_numpy(dtype=int)
    return y_arr, complete, weights[keep], int(weights[~keep].sum())


def _not_estimable(header: dict, reason: str, notes: list[str]) -> RegressionResult:
    terms = tuple(RegressionTerm(c, None, None, None) for c in header["covariates"])
    return RegressionResult(
        method="not_estimable", reason=reason, terms=terms, note="; ".join(notes) or None, **header
    )


def _joint_separation(y: np.ndarray, X, weights: np.ndarray) -> list[str] | None:
    """Covariates whose ML coefficient is infinite (Konis LP); None if X is collinear."""
    import numpy as np
    import pandas as pd  # heavy: imported only by the regression
    from firthmodels import detect_separation as konis
    from scipy.linalg import LinAlgError

    # The LP (maximise sum_i s_i x_i.b subject to s_i x_i.b >= 0, s_i = +-1 by y_i) only
    # sees each distinct (x, y) point, once per patient: n identical rows are one
    # constraint and n times its objective term. So solve it over the distinct points,
    # each row (intercept included) multiplied by its count: the same LP, hence the same
    # answer, with at most 2^k x 2 rows for k binary covariates instead of one per patient.
    points = pd.DataFrame(np.column_stack([X.to_numpy(dtype=float), np.asarray(y, dtype=float)]))
    # Sorted like np.unique(axis=0, return_counts=True), which is far slower on many rows.
    counted = (
        pd.Series(weights, index=points.index)
        .groupby([points[c] for c in points.columns], sort=True, dropna=False)
        .sum()
    )
    distinct = np.array(counted.index.tolist(), dtype=float).reshape(len(counted), -1)
    counts = counted.to_numpy()
    design = np.column_stack([distinct[:, :-1], np.ones(len(distinct))]) * counts[:, None]
    try:
        found = konis(design, distinct[:, -1], fit_intercept=False)
    except LinAlgError:
        return None
    # is_finite lists the covariates then the intercept.
    finite = found.is_finite[: X.shape[1]]
    return [str(c) for c, ok in zip(X.columns, finite, strict=True) if not ok]


def _choose_method(method, separated, joint, epc, min_epc) -> tuple[str, str]:
    """Which estimator runs, and the sentence that says why."""
    if separated:
        why = "separation: " + ", ".join(separated) + " has a level with all or no events"
    elif joint:
        why = (
            "separation by a combination of covariates (infinite ML estimate for "
            + ", ".join(joint)
            + ")"
        )
    else:
        why = None
    epc_text = f"{format_decimal(epc, 1)} events per covariate"
    if method == "logit":
        if why:
            return "not_estimable", why + "; maximum likelihood estimates are infinite (use Firth)"
        return "logit", f"maximum likelihood requested; no separation; {epc_text}"
    if method == "firth":
        return "firth", "Firth requested" + (f"; {why}" if why else "") + f"; {epc_text}"
    if why:
        return "firth", f"{why}; {epc_text}"
    if epc < min_epc:
        return "firth", f"no separation but only {epc_text} (< {min_epc:g})"
    return "logit", f"no separation and {epc_text} (>= {min_epc:g})"


def c_statistic(y: Sequence[int], score: Sequence[float], *, freq_weights=None) -> float | None:
    """Area under the ROC curve (the c statistic) of ``score`` for the binary ``y``.

    Parameters
    ----------
    y : sequence of int
        1 = event, 0 = no event.
    score : sequence of float
        Higher = more likely an event (e.g. a model's linear predictor).
    freq_weights : sequence of int, optional
        How many patients each element stands for.

    Returns
    -------
    float or None
        The probability that a patient with the event scores higher than one without
        it, ties counting one half (the Mann-Whitney form); None when either class is
        empty.
    """
    import numpy as np

    y_arr = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    w = np.ones(len(y_arr)) if freq_weights is None else np.asarray(freq_weights, dtype=float)
    levels, index = np.unique(score, return_inverse=True)
    events = np.bincount(index, weights=w * (y_arr == 1), minlength=len(levels))
    others = np.bincount(index, weights=w * (y_arr == 0), minlength=len(levels))
    total_events, total_others = events.sum(), others.sum()
    if total_events == 0 or total_others == 0:
        return None
    below = np.cumsum(others) - others  # patients without the event scoring lower
    concordant = float(np.sum(events * (below + 0.5 * others)))
    return concordant / (total_events * total_others)


def _fit_logit(y: np.ndarray, X, weights: np.ndarray):
    """Maximum likelihood, OR = exp(b), Wald CI and p; the terms, notes and linear
    predictor.

    statsmodels ``GLM`` (binomial, logit link: ``Logit``'s likelihood) because it takes
    frequency weights; z statistics (``use_t=False``) as ``Logit`` and Stata.
    """
    import numpy as np

    # The modules themselves, not statsmodels.api, which imports every model and the
    # plotting (a third of a second of each study-tables command).
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.tools import add_constant

    design = add_constant(X, has_constant="add")
    glm = GLM(y, design, family=Binomial(), freq_weights=weights)
    model = glm.fit(method="IRLS", maxiter=LOGIT_MAX_ITER, tol=LOGIT_TOL, use_t=False)
    notes = [] if model.converged else ["Logit did not converge"]
    ci = model.conf_int(alpha=1 - CONFIDENCE)
    terms = [
        RegressionTerm(
            key=str(c),
            odds_ratio=float(np.exp(model.params[c])),
            ci=(float(np.exp(ci.loc[c, 0])), float(np.exp(ci.loc[c, 1]))),
            p=float(model.pvalues[c]),
        )
        for c in X.columns
    ]
    return terms, notes, np.asarray(design.to_numpy(dtype=float) @ model.params.to_numpy())


def _fit_firth(y: np.ndarray, X, weights: np.ndarray):
    """Firth (firthmodels, as R logistf): profile-likelihood CI, penalized LR p; the
    terms, notes and linear predictor."""
    import warnings

    import numpy as np
    from firthmodels import FirthLogisticRegression

    model = FirthLogisticRegression(
        backend="auto",
        max_iter=FIRTH_MAX_ITER,
        gtol=FIRTH_TOL,
        xtol=FIRTH_TOL,
        fit_intercept=True,
        penalty_weight=0.5,
    )
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X.to_numpy(dtype=float), y, sample_weight=weights)
        k = X.shape[1]
        model.lrt(features=list(range(k)))
        ci = model.conf_int(
            alpha=1 - CONFIDENCE,
            method="pl",
            features=list(range(k)),
            max_iter=FIRTH_PL_MAX_ITER,
            tol=FIRTH_TOL,
        )
    notes += sorted({f"Firth: {w.message}" for w in caught})
    if not model.converged_:
        notes.append("Firth fit did not converge")
    terms = []
    for j, c in enumerate(X.columns):
        low, high = ci[j]
        p = model.lrt_pvalues_[j]
        terms.append(
            RegressionTerm(
                key=str(c),
                odds_ratio=float(np.exp(model.coef_[j])),
                ci=_finite_pair(float(np.exp(low)), float(np.exp(high))),
                p=float(p) if math.isfinite(p) else None,
            )
        )
    linear = X.to_numpy(dtype=float) @ model.coef_ + model.intercept_
    return terms, notes, linear
