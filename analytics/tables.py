"""The study's tables built from the registry's counts (``datasets``) and ``stats``.

``study_tables`` returns the JSON contract of ``shared/spec/study-tables-json.md``:
plain numbers, unrounded, ``None`` plus a ``note`` when not estimable, exact
counts, and per-row ``n`` and ``missing``. Rounding happens only for display
(``analytics.templatetags`` and ``table_frames``'s text columns).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone

from registry.workflow.services import screening_counts

from . import datasets, stats
from . import exposures as ex
from .datasets import Filters
from .flow import flow_from

P_METHODS = ("fisher", "wald")


def _pair(ci) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def _percent(k: int, n: int) -> float | None:
    return None if n == 0 else k / n * 100


# -- exposure x outcome rows -----------------------------------------------------------------


def risk_row(counts: dict[str, int], prefix: str, *, p_method: str) -> dict[str, object]:
    """One Table I / Table III row from the counts of its cells."""
    a, n1 = counts[f"{prefix}:exposed_events"], counts[f"{prefix}:exposed_n"]
    c, n0 = counts[f"{prefix}:unexposed_events"], counts[f"{prefix}:unexposed_n"]
    result = stats.compare_risks(a, n1, c, n0, p_method=p_method, outcome_adverse=True)
    n = n1 + n0
    nn_ci = result.nn_ci
    return {
        "n": n,
        "missing": counts[f"{prefix}:missing"],
        "exposed_n": n1,
        "exposed_events": a,
        "unexposed_n": n0,
        "unexposed_events": c,
        "percent": _percent(a, n),
        "risk_exposed": result.risk_exposed,
        "risk_unexposed": result.risk_unexposed,
        "rr": result.rr,
        "rr_ci": _pair(result.rr_ci),
        "rd": result.rd,
        "rd_ci": _pair(result.rd_ci),
        "or": result.odds_ratio,
        "or_ci": _pair(result.or_ci),
        "p": result.p,
        "p_method": result.p_method,
        "nnh": result.nnh,
        "nnt": result.nnt,
        "nn_unrounded": result.nn_unrounded,
        "nn_ci": None if nn_ci is None else {**dataclasses.asdict(nn_ci), "text": nn_ci.text},
        "note": result.note,
        "cell_prefix": prefix,
    }


def table1(counts: dict[str, int], *, p_method: str = "fisher") -> dict[str, object]:
    """Table I: each exposure against poor outcome (mRS 4-6) at 3 months."""
    rows = []
    for row in ex.TABLE1_ROWS:
        rows.append(
            {
                "key": row.key,
                "label": str(row.label),
                "population": row.population,
                **risk_row(counts, f"table1:{row.key}", p_method=p_method),
            }
        )
    return {
        "outcome": ex.TABLE1_OUTCOME,
        "n_analysed": counts["table1:analysed"],
        "n_missing_outcome": counts["table1:missing_outcome"],
        "p_method": p_method,
        "rows": rows,
    }


def table3(counts: dict[str, int], *, p_method: str = "fisher") -> dict[str, object]:
    """Table III: stent type and DAPT against new infarct and sICH."""
    rows = []
    for exposure in ex.TABLE3_EXPOSURES:
        for outcome in ex.TABLE3_OUTCOMES:
            prefix = f"table3:{exposure}:{outcome}"
            rows.append(
                {
                    "key": f"{exposure}:{outcome}",
                    "exposure": exposure,
                    "outcome": outcome,
                    "label": str(ex.label(exposure)),
                    "outcome_label": str(ex.label(outcome)),
                    "population": "all",
                    **risk_row(counts, prefix, p_method=p_method),
                }
            )
    return {"p_method": p_method, "rows": rows}


# -- diagnostic tables -----------------------------------------------------------------------


def _proportion(p: stats.Proportion) -> dict[str, object]:
    return {"k": p.k, "n": p.n, "estimate": p.estimate, "ci": _pair(p.ci)}


def _ratio(r: stats.Ratio) -> dict[str, object]:
    return {"estimate": r.estimate, "ci": _pair(r.ci), "note": r.note}


def diagnostic(counts: dict[str, int], diag: ex.Diagnostic) -> dict[str, object]:
    """Tables II and IV: a test against its reference standard."""
    cells = {name: counts[f"{diag.key}:{name}"] for name in ("tp", "fp", "fn", "tn")}
    result = stats.diagnostic_accuracy(**cells)
    return {
        "test": diag.test,
        "reference": diag.reference,
        "positive": diag.positive,
        **cells,
        "n": sum(cells.values()),
        "missing": counts[f"{diag.key}:missing"],
        "p": result.p,
        "p_method": "fisher",
        "sensitivity": _proportion(result.sensitivity),
        "specificity": _proportion(result.specificity),
        "ppv": _proportion(result.ppv),
        "npv": _proportion(result.npv),
        "lr_positive": _ratio(result.lr_positive),
        "lr_negative": _ratio(result.lr_negative),
        "note": result.note,
    }


# -- baseline and outcomes -------------------------------------------------------------------


def _descriptives(values, percentile_method: str) -> dict[str, object]:
    d = stats.describe(values, percentile_method=percentile_method)
    return dataclasses.asdict(d)


def baseline(
    counts: dict[str, int], columns: dict[str, list], *, percentile_method: str = "linear"
) -> dict[str, object]:
    """Descriptives of the continuous values and n (%) of each characteristic."""
    rows = []
    for key in ex.BASELINE_ROWS:
        n, denominator = counts[f"baseline:{key}:n"], counts[f"baseline:{key}:denominator"]
        rows.append(
            {
                "key": key,
                "label": str(ex.label(key)),
                "n": n,
                "denominator": denominator,
                "missing": counts[f"baseline:{key}:missing"],
                "percent": _percent(n, denominator),
            }
        )
    continuous = {
        key: {"label": str(label), **_descriptives(columns[key], percentile_method)}
        for key, (label, _path) in ex.CONTINUOUS.items()
    }
    age = {k: v for k, v in continuous["age"].items() if k != "label"}
    return {
        "n_patients": counts["baseline:patients"],
        "age": age,
        "continuous": continuous,
        "rows": rows,
    }


def _share(n: int, denominator: int) -> dict[str, object]:
    return {"n": n, "denominator": denominator, "percent": _percent(n, denominator)}


def outcomes(counts: dict[str, int]) -> dict[str, object]:
    """Recanalization, 3-month mortality and the mRS distributions."""
    recanalization = {
        pop: _share(
            counts[f"outcomes:recanalization:{pop}:n"],
            counts[f"outcomes:recanalization:{pop}:denominator"],
        )
        for pop in ex.RECANALIZATION_POPULATIONS
    }
    mrs = {
        tp: [counts[f"outcomes:mrs:{tp}:{grade}"] for grade in ex.MRS_GRADES]
        for tp in ex.MRS_TIMEPOINTS
    }
    mrs_missing = {tp: counts[f"outcomes:mrs:{tp}:missing"] for tp in ex.MRS_TIMEPOINTS}
    non_poor = {tp: _share(sum(dist[:4]), sum(dist)) for tp, dist in mrs.items()}
    good = {tp: _share(sum(dist[:3]), sum(dist)) for tp, dist in mrs.items()}
    return {
        "recanalization": recanalization,
        "death_3m": _share(counts["outcomes:death_3m:n"], counts["outcomes:death_3m:denominator"]),
        "death_after_discharge": {"n": counts["outcomes:death_after_discharge:n"]},
        "mrs": mrs,
        "mrs_missing": mrs_missing,
        "non_poor": non_poor,
        "good": good,
    }


def occlusion_sites(counts: dict[str, int]) -> dict[str, object]:
    """Occlusion sites by 3 T MRI and by DSA (Figure 4)."""
    result: dict[str, object] = {
        method: {site: counts[f"occlusion_sites:{method}:{site}"] for site in ex.OCCLUSION_SITES}
        for method in ex.OCCLUSION_PATHS
    }
    result["missing"] = {m: counts[f"occlusion_sites:{m}:missing"] for m in ex.OCCLUSION_PATHS}
    return result


# -- regression ------------------------------------------------------------------------------


def default_covariates() -> list[str]:
    return list(settings.REGRESSION_DEFAULT_COVARIATES)


def validate_covariates(keys) -> list[str]:
    """Known covariate keys, in order, without duplicates (ValueError otherwise)."""
    keys = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
    unknown = [k for k in keys if k not in ex.VARIABLE_KEYS or k == ex.TABLE1_OUTCOME]
    if unknown:
        raise ValueError(f"unknown covariates: {', '.join(unknown)}")
    if not keys:
        raise ValueError("choose at least one covariate")
    return keys


class _Design:
    """A regression's data as its distinct rows and their counts: hashable by
    content, so that ``_fit`` can remember its fit, and small enough to remember.

    The variables are binary (1 / 0 / missing), so a row is a base-3 number; the
    rows are rebuilt from the counts in that number's order. The database returns
    patients in no fixed order; the same data must give the same fit and digits.
    """

    def __init__(self, outcome: str, covariates: tuple[str, ...], columns: dict):
        self.names = (outcome, *covariates)
        width = len(self.names)
        columns = [np.asarray(columns[k], dtype=float) for k in self.names]
        digits = np.column_stack(columns).reshape(-1, width)
        if ((digits != 0) & (digits != 1) & ~np.isnan(digits)).any():
            raise ValueError("the regression's outcome and covariates are yes/no variables")
        digits = np.where(np.isnan(digits), 2.0, digits)  # 2 = missing
        codes = (digits @ (3.0 ** np.arange(width)[::-1])).astype(np.int64)
        if 3**width <= 1 << 20:  # few possible rows: count them in one pass
            counts = np.bincount(codes, minlength=3**width)
            self.codes = np.flatnonzero(counts)
            self.counts = counts[self.codes]
        else:
            self.codes, self.counts = np.unique(codes, return_counts=True)

    @property
    def rows(self) -> np.ndarray:
        """The distinct rows (NaN = missing) in the canonical order; ``counts`` says
        how many patients each stands for."""
        powers = 3 ** np.arange(len(self.names))[::-1]
        digits = (self.codes[:, None] // powers) % 3
        return np.where(digits == 2, np.nan, digits.astype(float)).reshape(-1, len(self.names))

    def _key(self) -> tuple:
        return (self.names, self.codes.tobytes(), self.counts.tobytes())

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, _Design) and self._key() == other._key()


@functools.lru_cache(maxsize=8)
def _fit(design: _Design):
    """The fit of one design, remembered: a Firth fit with profile-likelihood CIs
    takes a few hundred milliseconds and the report page asks for the same one on
    every visit until the data change.

    The distinct rows are fitted with their counts as frequency weights: the same
    estimates as one row per patient (``tests/test_stats.py``), in milliseconds
    whatever the number of patients (1.9 s at 1,000,000 when the rows were repeated).
    """
    outcome, *covariates = design.names
    frame = pd.DataFrame(design.rows, columns=design.names)
    return stats.logistic_regression(
        frame[outcome].to_numpy(),
        frame[covariates],
        outcome=outcome,
        method="auto",
        freq_weights=design.counts,
    )


def regression(columns: dict[str, object], covariates: list[str]) -> dict[str, object]:
    """Multivariable logistic regression of poor outcome on ``covariates``.

    ``columns`` holds one array per variable (1 / 0 / NaN or True / False / None).
    Complete cases (``stats.logistic_regression`` excludes and counts the others).
    """
    outcome = ex.TABLE1_OUTCOME
    result = _fit(_Design(outcome, tuple(covariates), columns))
    terms = [
        {
            "key": term.key,
            "label": str(ex.label(term.key)),
            "or": term.odds_ratio,
            "ci": _pair(term.ci),
            "p": term.p,
            "note": term.note,
        }
        for term in result.terms
    ]
    note = " ".join(part for part in (result.reason, result.note) if part) or None
    return {
        "outcome": result.outcome,
        "method": result.method,
        "reason": result.reason,
        "n": result.n,
        "events": result.events,
        "events_per_covariate": result.events_per_covariate,
        "n_excluded_missing": result.n_excluded_missing,
        "covariates": list(covariates),
        "separated": list(result.separated),
        "terms": terms,
        "note": note,
    }


# -- everything ------------------------------------------------------------------------------


def study_tables(
    user=None,
    filters: Filters | None = None,
    *,
    p_method: str = "fisher",
    covariates: list[str] | None = None,
    percentile_method: str = "linear",
    include_regression: bool = True,
) -> dict[str, object]:
    """Every table of the study as the JSON contract (a plain ``dict``).

    Parameters
    ----------
    user : User or None
        Counts only the patients this user may read; None = all (management command).
    filters : Filters
        Site, door-date range, circulation.
    p_method : {"fisher", "wald"}
        p-values of Tables I and III (Fisher by default; Wald reproduces the paper).
    covariates : list of str
        Regression covariates; default ``settings.REGRESSION_DEFAULT_COVARIATES``.
    percentile_method : str
        ``numpy.percentile`` method of medians and quartiles.

    Notes
    -----
    A constant number of SQL queries whatever the number of patients: one reading
    the per-patient columns that every count, the continuous values, the
    regression's design and the flow chart's enrolled patients come from
    (``datasets.fetch_analysis``; on PostgreSQL outside a transaction, with the
    statements of its snapshot and, on a large registry, a second connection's
    half), and one counting the screening log. The flow
    chart gives ``n_excluded`` (the patients excluded from the analysis after
    enrolment, left out of everything else).
    """
    if p_method not in P_METHODS:
        raise ValueError(f"p_method must be one of {P_METHODS}")
    filters = filters or Filters()
    covariates = validate_covariates(covariates or default_covariates())
    # Every count, the continuous values, the regression's design and the flow chart's
    # enrolled patients: one query; the screening log: a second.
    columns, enrolment = datasets.fetch_analysis(user, filters)
    counts = datasets.count_columns(columns, datasets.all_cells(datasets.TABLES))
    continuous = columns.continuous
    flow = flow_from(screening_counts(datasets.screening(user, filters)), enrolment)
    result = {
        "generated_at": timezone.localtime().isoformat(timespec="seconds"),
        "filters": filters.as_contract(),
        "n_patients": counts["baseline:patients"],
        # Excluded from the analysis after enrolment (same access and filters).
        "n_excluded": flow["excluded_after_enrolment"]["total"],
        "p_method": p_method,
        "baseline": baseline(counts, continuous, percentile_method=percentile_method),
        "table1": table1(counts, p_method=p_method),
        "table2": diagnostic(counts, ex.TABLE2),
        "table3": table3(counts, p_method=p_method),
        "table4": diagnostic(counts, ex.TABLE4),
        "outcomes": outcomes(counts),
        "occlusion_sites": occlusion_sites(counts),
        "flow": flow,
    }
    if include_regression:
        design = columns.binary([ex.TABLE1_OUTCOME, *covariates])
        result["regression"] = regression(design, covariates)
    return result


def figure_data(user=None, filters: Filters | None = None) -> dict[str, object]:
    """Only what the figures need (outcomes and occlusion sites), one query."""
    queryset = datasets.patients(user, filters or Filters())
    counts = datasets.count_tables(queryset, ("outcomes", "occlusion_sites"))
    return {"outcomes": outcomes(counts), "occlusion_sites": occlusion_sites(counts)}


def strip_internal(result: dict) -> dict:
    """The contract without the presentation helpers (``cell_prefix``, labels map)."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in {"cell_prefix"}}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(result)
