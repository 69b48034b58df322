"""The study's tables: the JSON contract assembled from the counts and ``stats``.

``study_tables`` returns the JSON contract of ``shared/spec/study-tables-json.md``:
plain numbers, unrounded, ``None`` plus a ``note`` when not estimable, exact
counts, and per-row ``n`` and ``missing``. Rounding happens only for display
(``analytics.formatting``). The registry is read by ``datasets``, the cells are
``cells``, a Table I / III row's values are declared in ``contract`` and the
regression is fitted (and remembered) by ``regression``.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.utils import timezone

from registry import rules
from registry.workflow.services import screening_counts

from . import cells, contract, datasets, stats
from . import exposures as ex
from .datasets import Filters
from .flow import flow_from
from .regression import Design, fit, fit_shift

P_METHODS = stats.P_METHODS


def _pair(ci) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def _percent(k: int, n: int) -> float | None:
    return None if n == 0 else k / n * 100


# -- exposure x outcome rows -----------------------------------------------------------------


def risk_row(counts: dict[str, int], prefix: str, *, p_method: str) -> dict[str, object]:
    """One Table I / Table III row from the counts of its cells (``contract.RISK_FIELDS``)."""
    a, n1 = counts[f"{prefix}:exposed_events"], counts[f"{prefix}:exposed_n"]
    c, n0 = counts[f"{prefix}:unexposed_events"], counts[f"{prefix}:unexposed_n"]
    result = stats.compare_risks(a, n1, c, n0, p_method=p_method, outcome_adverse=True)
    own = {"missing": counts[f"{prefix}:missing"], "percent": _percent(a, result.n)}
    return {**contract.contract_row(contract.RISK_FIELDS, result, own), "cell_prefix": prefix}


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
    table = {name: counts[f"{diag.key}:{name}"] for name in contract.DIAGNOSTIC_CELLS}
    result = stats.diagnostic_accuracy(**table)
    return {
        "test": diag.test,
        "reference": diag.reference,
        "positive": diag.positive,
        **table,
        "n": sum(table.values()),
        "missing": counts[f"{diag.key}:missing"],
        "p": result.p,
        "p_method": "fisher",
        **{k: _proportion(getattr(result, k)) for k in contract.DIAGNOSTIC_PROPORTIONS},
        **{k: _ratio(getattr(result, k)) for k in contract.DIAGNOSTIC_RATIOS},
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


def _rate(key: str, share: dict[str, object]) -> dict[str, object]:
    """One of ``outcomes.rates``: a share with its exact (Clopper-Pearson) 95 % CI, in %."""
    ci = stats.proportion(share["n"], share["denominator"]).ci
    return {
        "key": key,
        "numerator": share["n"],
        "denominator": share["denominator"],
        "percent": share["percent"],
        "ci": None if ci is None else [ci[0] * 100, ci[1] * 100],
        "ci_method": "clopper-pearson",
    }


def outcomes(counts: dict[str, int]) -> dict[str, object]:
    """Recanalization, 3-month mortality and the mRS distributions; ``rates``: the
    outcome rates with their exact 95 % CI."""
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
    death = _share(counts["outcomes:death_3m:n"], counts["outcomes:death_3m:denominator"])
    shares = {
        **{f"recanalization_{pop}": share for pop, share in recanalization.items()},
        "death_3m": death,
        "mrs_0_2_3m": good["month3"],
        "mrs_0_3_3m": non_poor["month3"],
    }
    return {
        "rates": [_rate(key, shares[key]) for key in ex.OUTCOME_RATES],
        "recanalization": recanalization,
        "death_3m": death,
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
    """Known covariate keys, in order, without duplicates (ValueError otherwise).

    A covariate is a yes/no study variable or a continuous value
    (``exposures.REGRESSION_CONTINUOUS``); the 3-month mRS and the values derived from
    it (``exposures.OUTCOME_DERIVED``) are the outcome and are refused.
    """
    keys = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
    outcome = [k for k in keys if k in ex.OUTCOME_DERIVED]
    if outcome:
        raise ValueError(
            f"covariate {', '.join(outcome)} refused: the outcome (poor outcome at 3 months)"
            " and the values derived from the 3-month mRS cannot be covariates"
        )
    known = {*ex.VARIABLE_KEYS, *ex.REGRESSION_CONTINUOUS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown covariates: {', '.join(unknown)}")
    if not keys:
        raise ValueError("choose at least one covariate")
    return keys


def regression_note(reason: str | None, notes: str | None) -> str | None:
    """The regression's reason and its notes as sentences: "Reason. Note; note."."""
    sentences = [part[0].upper() + part[1:] for part in (reason, notes) if part]
    return " ".join(s if s.endswith(".") else f"{s}." for s in sentences) or None


def _term(term, crude, key: str) -> dict[str, object]:
    return {
        "key": key,
        "label": str(ex.label(key)),
        "unit": str(ex.unit(key)),
        "or": term.odds_ratio,
        "ci": _pair(term.ci),
        "p": term.p,
        "note": term.note,
        "crude_or": crude.odds_ratio,
        "crude_ci": _pair(crude.ci),
        "crude_p": crude.p,
    }


def _complete_only(columns: dict, keys: list[str]) -> dict:
    """``columns`` with every patient missing one of ``keys`` set missing throughout,
    so that the crude models use the patients of the adjusted one."""
    import numpy as np

    arrays = {k: np.asarray(columns[k], dtype=float) for k in keys}
    complete = np.logical_and.reduce([~np.isnan(a) for a in arrays.values()])
    return {k: np.where(complete, a, np.nan) for k, a in arrays.items()}


def regression(columns: dict[str, object], covariates: list[str]) -> dict[str, object]:
    """Multivariable logistic regression of poor outcome on ``covariates``, and each
    covariate's crude (unadjusted) OR on the same patients.

    ``columns`` holds one array per variable (1 / 0 / NaN or True / False / None; a
    continuous covariate's own values). Complete cases (``stats.logistic_regression``
    excludes and counts the others); the fits are remembered (``regression.fit``).
    """
    continuous = tuple(c for c in covariates if c in ex.REGRESSION_CONTINUOUS)
    outcome = ex.TABLE1_OUTCOME
    result = fit(Design(outcome, tuple(covariates), columns, continuous=continuous))
    same = _complete_only(columns, [outcome, *covariates])
    crude = [
        fit(Design(outcome, (key,), same, continuous=continuous)).terms[0] for key in covariates
    ]
    terms = [_term(t, c, t.key) for t, c in zip(result.terms, crude, strict=True)]
    note = regression_note(result.reason, result.note)
    return {
        "outcome": result.outcome,
        "method": result.method,
        "reason": result.reason,
        "ci_method": result.ci_method,
        "p_method": result.p_method,
        "c_statistic": result.c_statistic,
        "n": result.n,
        "events": result.events,
        "events_per_covariate": result.events_per_covariate,
        "n_excluded_missing": result.n_excluded_missing,
        "covariates": list(covariates),
        "separated": list(result.separated),
        "terms": terms,
        "note": note,
    }


# -- shift analysis --------------------------------------------------------------------------


def _shift_fit(columns, outcome, keys: list[str], *, check: bool):
    continuous = (ex.SHIFT_OUTCOME, *(k for k in keys if k in ex.REGRESSION_CONTINUOUS))
    values = {ex.SHIFT_OUTCOME: outcome, **columns.covariates(keys)}
    return fit_shift(
        Design(ex.SHIFT_OUTCOME, tuple(keys), values, continuous=continuous), check=check
    )


def _pair_or_none(value):
    return None if value is None else _pair(value)


def _shift_outcome(columns, row: ex.Row):
    """The 3-month mRS of the row's population (missing outside it)."""
    import numpy as np

    in_population = columns.mask(cells.population(row.population))
    return np.where(in_population, columns.raw[datasets.MRS_3M_RAW], np.nan)


def shift_groups(columns, row: ex.Row) -> dict[str, list[int]]:
    """The 3-month mRS distribution (patients per grade 0-6) of the row's exposed and
    unexposed patients with both values recorded (the Grotta chart of its shift)."""
    import numpy as np

    outcome = _shift_outcome(columns, row)
    exposure = columns.binary([row.key])[row.key]
    # One pass: each patient with both values is one number, exposure x grade.
    grades = len(ex.MRS_GRADES)
    both = np.isin(outcome, ex.MRS_GRADES) & ~np.isnan(exposure)
    joint = (exposure[both] * grades + outcome[both]).astype(np.int64)
    counts = np.bincount(joint, minlength=2 * grades).tolist()
    return {"exposed": counts[grades:], "unexposed": counts[:grades]}


def shift_row(columns, row: ex.Row, covariates: list[str]) -> dict[str, object]:
    """One exposure's common OR of a worse 3-month mRS, crude and adjusted."""
    outcome = _shift_outcome(columns, row)
    groups = shift_groups(columns, row)
    crude = _shift_fit(columns, outcome, [row.key], check=True)
    others = [c for c in covariates if c != row.key]
    adjusted = _shift_fit(columns, outcome, [row.key, *others], check=False)
    return {
        "key": row.key,
        "label": str(row.label),
        "population": row.population,
        "n": crude.n,
        "common_or": crude.common_or,
        "ci": _pair_or_none(crude.ci),
        "p": crude.p,
        "note": crude.note,
        "proportional_odds_doubtful": crude.proportional_odds_doubtful,
        "cut_points": [
            {"cut": c.cut, "or": c.odds_ratio, "ci": _pair_or_none(c.ci)} for c in crude.cut_points
        ],
        "adjusted_n": adjusted.n,
        "adjusted_or": adjusted.common_or,
        "adjusted_ci": _pair_or_none(adjusted.ci),
        "adjusted_p": adjusted.p,
        "adjusted_note": adjusted.note,
        "mrs_exposed": groups["exposed"],
        "mrs_unexposed": groups["unexposed"],
    }


def shift(columns, covariates: list[str]) -> dict[str, object]:
    """The shift analysis: each Table I exposure against the 3-month mRS (0-6) in a
    proportional-odds logistic model, alone and with ``covariates``.

    The rows follow Table I: the same exposures and populations, the patients with the
    3-month mRS and the exposure recorded (the adjusted model: and every covariate).
    """
    return {
        "model": "proportional-odds logistic",
        "ci_method": "wald",
        "outcome": ex.SHIFT_OUTCOME,
        "covariates": list(covariates),
        "rows": [shift_row(columns, row, covariates) for row in ex.TABLE1_ROWS],
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
    freeze=None,
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
    freeze : DataFreeze or None
        Compute from this data freeze instead of the live registry
        (``datasets.source``); the result then carries a top-level ``freeze`` object
        (name, ``created_at``, ``sha256``, ``n_patients``) and is the same, apart from
        ``generated_at``, however the registry changes.

    Notes
    -----
    A constant number of SQL queries whatever the number of patients: one reading
    the per-patient columns that every count, the continuous values, the
    regression's design and the flow chart's enrolled patients come from
    (``datasets.fetch_analysis``; on PostgreSQL outside a transaction, with the
    statements of its snapshot and, on a large registry, a second connection's
    half), and one counting the screening log. The flow
    chart gives ``n_excluded`` (the patients excluded after enrolment and left out of
    everything else) and ``n_lost_to_followup`` (excluded as lost to follow-up: left out
    only of what needs the 3-month mRS, ``datasets.MRS_3M_ONLY_EXCLUSIONS``).
    """
    if p_method not in P_METHODS:
        raise ValueError(f"p_method must be one of {P_METHODS}")
    filters = filters or Filters()
    covariates = validate_covariates(covariates or default_covariates())
    with datasets.source(freeze):
        result = _study_tables(
            user, filters, p_method, covariates, percentile_method, include_regression
        )
    if freeze is not None:
        result["freeze"] = datasets.freeze_contract(freeze)
    return result


def _study_tables(
    user, filters: Filters, p_method, covariates, percentile_method, include_regression
) -> dict[str, object]:
    # Every count, the continuous values, the regression's design and the flow chart's
    # enrolled patients: one query; the screening log: a second.
    columns, enrolment = datasets.fetch_analysis(user, filters)
    columns, followup_counts = followup_window(columns, strict=filters.strict_window)
    counts = cells.count_columns(columns, cells.all_cells(cells.TABLES))
    continuous = columns.continuous
    flow = flow_from(screening_counts(datasets.screening(user, filters)), enrolment)
    result = {
        "generated_at": timezone.localtime().isoformat(timespec="seconds"),
        "filters": filters.as_contract(),
        "n_patients": counts["baseline:patients"],
        # Excluded after enrolment (same access and filters): left out of every analysis,
        # and lost to follow-up (left out of those that need the 3-month mRS only).
        "n_excluded": flow["excluded_after_enrolment"]["total"] - flow["lost_to_followup"],
        "n_lost_to_followup": flow["lost_to_followup"],
        "p_method": p_method,
        "baseline": baseline(counts, continuous, percentile_method=percentile_method),
        "table1": table1(counts, p_method=p_method),
        "table2": diagnostic(counts, ex.TABLE2),
        "table3": table3(counts, p_method=p_method),
        "table4": diagnostic(counts, ex.TABLE4),
        "outcomes": outcomes(counts),
        "occlusion_sites": occlusion_sites(counts),
        "flow": flow,
        "followup": followup_counts,
    }
    if include_regression:
        design = columns.covariates([ex.TABLE1_OUTCOME, *covariates])
        result["regression"] = regression(design, covariates)
        result["shift"] = shift(columns, covariates)
    return result


def followup_window(columns, *, strict: bool) -> tuple[object, dict[str, int]]:
    """The ``followup`` object of the contract, and the columns the tables count.

    Parameters
    ----------
    columns : datasets.PatientColumns
        The analysis set, with the follow-up days (``datasets.ANALYSIS``).
    strict : bool
        False counts every recorded 3-month mRS, as the study did; True counts an
        mRS whose follow-up date lies outside 90 days ± ``rules.window_days()`` as
        not recorded (a sensitivity analysis).

    Returns
    -------
    columns, dict
        The columns to count, and ``{"in_window", "out_of_window", "window_days"}``:
        patients with a recorded 3-month mRS whose follow-up date is inside or
        outside the window (a follow-up or onset and door date unknown: neither).
    """
    import numpy as np

    window = rules.window_days()
    recorded = ~np.isnan(columns.raw[datasets.MRS_3M_RAW])
    known = ~np.isnan(columns.followup_days)
    inside = columns.followup_in_window(window)
    outside = recorded & known & ~inside
    counts = {
        "in_window": int(np.count_nonzero(recorded & inside)),
        "out_of_window": int(np.count_nonzero(outside)),
        "window_days": window,
    }
    return (columns.without_mrs_3m(outside) if strict else columns), counts


def shift_figure_data(user, filters: Filters, key: str) -> dict[str, list[int]]:
    """The Grotta chart's data of one shift row (KeyError for an unknown key)."""
    row = next((r for r in ex.TABLE1_ROWS if r.key == key), None)
    if row is None:
        raise KeyError(key)
    columns, _enrolment = datasets.fetch_analysis(user, filters)
    columns, _counts = followup_window(columns, strict=filters.strict_window)
    return shift_groups(columns, row)


def add_provenance(result: dict, user=None, filters: Filters | None = None) -> dict:
    """``result`` with what a download must say it was made from: ``data_as_of`` (when
    the data read last changed, ISO 8601, ``datasets.data_as_of``) and
    ``followup_window`` (how a 3-month mRS outside the window counted). One query."""
    filters = filters or Filters()
    frozen = result.get("freeze")
    if frozen:  # the data read are the freeze's: as of its time, whatever changed since
        return {
            **result,
            "data_as_of": frozen["created_at"],
            "followup_window": filters.followup_window,
        }
    changed = datasets.data_as_of(user, filters)
    as_of = timezone.localtime(changed).isoformat(timespec="seconds") if changed else None
    return {**result, "data_as_of": as_of, "followup_window": filters.followup_window}


def figure_data(user=None, filters: Filters | None = None) -> dict[str, object]:
    """Only what the figures need (outcomes and occlusion sites), one query."""
    filters = filters or Filters()
    columns, conditions = datasets.fetch_cells(user, filters, ("outcomes", "occlusion_sites"))
    if filters.strict_window:
        columns, _counts = followup_window(columns, strict=True)
    counts = cells.count_columns(columns, conditions)
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
