"""The shift analysis: a proportional-odds logistic model of an ordered outcome (the
3-month mRS, 0-6, higher = worse) on an exposure, with or without covariates.

Pure statistics (no Django): arrays in, a typed ``ShiftResult`` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .stats import Z

if TYPE_CHECKING:
    import numpy as np

# BFGS on the log-likelihood, stopped on a gradient this small (with a numerical gradient a
# smaller one is not reached), so that the estimates
# agree with R's MASS::polr run with a tight reltol (tests/reference/shift_reference.R).
SHIFT_MAX_ITER = 500
SHIFT_GTOL = 1e-7


@dataclass(frozen=True)
class CutPoint:
    """The binary logistic OR of the outcome above ``cut`` (worse than ``cut``) for the
    exposed, with its Wald 95 % CI; null when a cell of that 2 x 2 table is empty."""

    cut: int
    odds_ratio: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class ShiftResult:
    """A proportional-odds model's common OR of the exposure (first column of X).

    ``common_or`` above 1: the exposed shift towards a worse outcome. ``ci`` and ``p``
    are Wald, from the observed information. ``cut_points`` and
    ``proportional_odds_doubtful`` are the check of the proportional-odds assumption
    (unadjusted models only). A null estimate comes with a ``note``.
    """

    n: int
    common_or: float | None
    ci: tuple[float, float] | None
    p: float | None
    note: str | None = None
    cut_points: tuple[CutPoint, ...] = ()
    proportional_odds_doubtful: bool | None = None


def proportional_odds(y, X, *, freq_weights=None, check: bool = True) -> ShiftResult:
    """Proportional-odds logistic regression of ordered ``y`` on ``X``.

    Parameters
    ----------
    y : array of float
        The ordered outcome (e.g. mRS 0-6); NaN is missing.
    X : pandas.DataFrame
        The exposure (first column, 1 / 0) and any covariates; NaN is missing. No
        constant: the model's cut points take its place.
    freq_weights : array of int, optional
        How many patients each row stands for; one each by default.
    check : bool
        Whether to check the proportional-odds assumption (the exposure alone).

    Returns
    -------
    ShiftResult
        Complete cases only; ``n`` counts them. A covariate without variation among
        them is left out of the fit, and the note says so.

    Notes
    -----
    ``statsmodels`` ``OrderedModel(distr="logit")`` models
    P(y <= k) = F(cut_k - x'b): exp(b) > 1 moves the exposed towards higher (worse)
    values, the same number as ``exp(coef)`` of R ``MASS::polr``. The levels are those
    observed. The check fits, at each cut point k, the binary logistic regression of
    y > k on the exposure; the assumption is called doubtful when the common OR lies
    outside the 95 % CI of one of these ORs (a screening rule, not a formal test:
    statsmodels has no Brant test).
    """
    import numpy as np

    y_arr, frame, weights = _complete(y, X, freq_weights)
    n = int(weights.sum())
    exposure = frame.columns[0]
    if len(np.unique(y_arr)) < 2:
        return ShiftResult(n, None, None, None, "the mRS does not vary")
    if frame[exposure].nunique() < 2:
        return ShiftResult(n, None, None, None, "the exposure does not vary")
    constant = [c for c in frame.columns[1:] if frame[c].nunique() < 2]
    dropped = f"left out, no variation: {', '.join(map(str, constant))}" if constant else None
    try:
        beta, se, converged = _fit(y_arr, frame.drop(columns=constant), weights)
    except (ValueError, np.linalg.LinAlgError):  # a singular information matrix
        return ShiftResult(n, None, None, None, "not estimable: the covariates are collinear")
    if not converged or not (math.isfinite(beta) and math.isfinite(se)):
        return ShiftResult(n, None, None, None, "the model did not converge")
    with np.errstate(over="ignore"):
        common, low, high = np.exp([beta, beta - Z * se, beta + Z * se]).tolist()
    if not all(0 < v < math.inf for v in (common, low, high)):
        # The groups' mRS do not overlap (separation): the ML estimate is infinite.
        return ShiftResult(n, None, None, None, "not estimable: the groups' mRS do not overlap")
    ci = (low, high)
    p = _wald_p(beta / se)
    if not check:
        return ShiftResult(n, common, ci, p, dropped)
    cuts = _cut_points(y_arr, frame[exposure].to_numpy(), weights)
    doubtful = any(c.ci is not None and not (c.ci[0] <= common <= c.ci[1]) for c in cuts)
    note = (
        "proportional odds doubtful: the OR at a cut point of the mRS excludes the common OR"
        if doubtful
        else None
    )
    return ShiftResult(n, common, ci, p, note, tuple(cuts), doubtful)


def _complete(y, X, freq_weights):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(X).astype(float).reset_index(drop=True)
    y_arr = np.asarray(y, dtype=float)
    weights = np.ones(len(frame)) if freq_weights is None else np.asarray(freq_weights, float)
    keep = frame.notna().all(axis=1).to_numpy() & ~np.isnan(y_arr)
    return y_arr[keep], frame[keep].reset_index(drop=True), weights[keep]


def _wald_p(z: float) -> float:
    from scipy.stats import norm

    return float(2 * norm.sf(abs(z)))


def _fit(y: np.ndarray, frame, weights: np.ndarray) -> tuple[float, float, bool]:
    """The exposure's coefficient, its standard error and whether BFGS converged."""
    import warnings

    import numpy as np
    from scipy.special import expit
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    class FrequencyWeighted(OrderedModel):
        # A row standing for w patients adds w times its log-likelihood, as R's polr
        # weights do; the score and Hessian are derived from this sum.
        def loglikeobs(self, params):
            return np.log(self.interval(params)[2] + 1e-20) * weights

        def interval(self, params):
            """``_bounds`` and ``prob`` at ``params``, remembered for the last
            ``params``: BFGS asks for the likelihood and the score at each point."""
            key = np.asarray(params).tobytes()
            if getattr(self, "_interval", (None,))[0] != key:
                low, upp = self._bounds(params)
                self._interval = (key, (low, upp, self.prob(low, upp)))
            return self._interval[1]

        # The logistic distribution's cdf and pdf (distr="logit") through expit: the
        # same values as scipy.stats.logistic, whose generic machinery took most of
        # the fitting time.
        def cdf(self, x):
            return expit(x)

        def pdf(self, x):
            p = expit(x)
            return p * (1 - p)

        # The score in closed form: statsmodels differentiates the likelihood
        # numerically, which cost about ten times the fit itself (48 models a report).
        def score_obs(self, params):
            return _score_obs(self, params) * weights[:, None]

        def score(self, params):
            return self.score_obs(params).sum(axis=0)

        def hessian(self, params):
            from statsmodels.tools.numdiff import approx_fprime

            hessian = approx_fprime(params, self.score, centered=True)
            return (hessian + hessian.T) / 2

    # Arrays rather than a data frame: the model's pandas bookkeeping cost more than
    # the fit of a few dozen distinct rows.
    model = FrequencyWeighted(y, frame.to_numpy(dtype=float), distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(method="bfgs", maxiter=SHIFT_MAX_ITER, gtol=SHIFT_GTOL, disp=False)
        se = float(np.sqrt(np.diag(result.cov_params()))[0])
    converged = bool(result.mle_retvals.get("converged", False))
    return float(np.asarray(result.params)[0]), se, converged


def _score_obs(model, params):
    """Per-row derivative of the ordered logit's log-likelihood in statsmodels'
    parametrization: the exposures' coefficients, then the first threshold and the
    logarithms of the increments between thresholds."""
    import numpy as np

    low, upp, prob = model.interval(params)
    prob = prob + 1e-20  # as in OrderedModel.loglikeobs
    pdf_low, pdf_upp = model.pdf(low), model.pdf(upp)
    k = model.k_levels - 1  # thresholds a_0 < ... < a_(k-1)
    rows, upper, lower = _threshold_columns(model)
    # d log p / d a_j; column k collects the infinite bounds, whose density is 0.
    by_threshold = np.zeros((len(rows), k + 1))
    by_threshold[rows, upper] += pdf_upp / prob
    by_threshold[rows, lower] -= pdf_low / prob
    # a_j = tau_0 + sum of exp(tau_m) for 1 <= m <= j
    tau = np.asarray(params)[-k:]
    jacobian = np.zeros((k, k))
    jacobian[:, 0] = 1.0
    for m in range(1, k):
        jacobian[m:, m] = np.exp(tau[m])
    by_coefficient = -((pdf_upp - pdf_low) / prob)[:, None] * np.asarray(model.exog)
    return np.column_stack((by_coefficient, by_threshold[:, :k] @ jacobian))


def _threshold_columns(model):
    """Each row's index and the columns of its upper and lower thresholds in
    ``_score_obs`` (the same at every step of the fit: computed once per model)."""
    import numpy as np

    if getattr(model, "_threshold_columns", None) is None:
        k = model.k_levels - 1
        level = np.asarray(model.endog, dtype=int)
        model._threshold_columns = (
            np.arange(len(level)),
            np.minimum(level, k),
            np.where(level > 0, level - 1, k),
        )
    return model._threshold_columns


def _cut_points(y: np.ndarray, exposed: np.ndarray, weights: np.ndarray) -> list[CutPoint]:
    """At each cut point k between observed levels: the OR of y > k, exposed vs not
    (Woolf's Wald CI, equal to the binary logistic regression's)."""
    import numpy as np

    cuts = []
    for cut in np.unique(y)[:-1]:
        worse = y > cut
        a = weights[(exposed == 1) & worse].sum()
        b = weights[(exposed == 1) & ~worse].sum()
        c = weights[(exposed == 0) & worse].sum()
        d = weights[(exposed == 0) & ~worse].sum()
        if min(a, b, c, d) == 0:
            cuts.append(CutPoint(int(cut), None, None))
            continue
        log_or = math.log(a * d / (b * c))
        se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        cuts.append(
            CutPoint(
                int(cut), math.exp(log_or), (math.exp(log_or - Z * se), math.exp(log_or + Z * se))
            )
        )
    return cuts
