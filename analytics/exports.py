"""The study tables as flat sheets: CSV (one block per table) and xlsx (one sheet each).

Numeric columns are unrounded (for re-analysis); ``*_display`` columns carry the
paper-style text ("16 (18.8%)", "1.96 (1.27–3.02)", "<0.0001").
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from . import contract
from . import exposures as ex
from .formatting import format_estimate_ci, format_n_percent, format_p

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import pandas as pd

SHEETS = (
    "baseline",
    "continuous",
    "table1",
    "table2",
    "table3",
    "table4",
    "outcomes",
    "mrs",
    "occlusion_sites",
    "regression",
    "shift",
)


def _ci(ci, index):
    return None if ci is None else ci[index]


# The paper-style text of a Table I / III row, after its numbers and before its note.
RISK_DISPLAYS = {
    "events_display": lambda row: format_n_percent(row["exposed_events"], row["n"]),
    "rr_display": lambda row: format_estimate_ci(row["rr"], row["rr_ci"]),
    "p_display": lambda row: format_p(row["p"]),
}


def _risk_rows(rows: list[dict], extra: tuple[str, ...]) -> pd.DataFrame:
    """Table I / III rows: their keys, label and population, then the values
    ``contract.RISK_FIELDS`` puts on the sheets, the display text and the note."""
    import pandas as pd

    records = []
    for row in rows:
        values = contract.sheet_row(contract.RISK_FIELDS, row)
        note = values.pop("note")
        records.append(
            {
                **{k: row[k] for k in extra},
                "label": row["label"],
                "population": row["population"],
                **values,
                **{name: display(row) for name, display in RISK_DISPLAYS.items()},
                "note": note,
            }
        )
    return pd.DataFrame.from_records(records)


def _diagnostic(table: dict) -> pd.DataFrame:
    import pandas as pd

    records = [
        {"measure": name, "value": table[name], "ci_low": None, "ci_high": None, "note": None}
        for name in (*contract.DIAGNOSTIC_CELLS, "n", "missing")
    ]
    for name in (*contract.DIAGNOSTIC_PROPORTIONS, *contract.DIAGNOSTIC_RATIOS):
        item = table[name]
        records.append(
            {
                "measure": name,
                "value": item["estimate"],
                "ci_low": _ci(item["ci"], 0),
                "ci_high": _ci(item["ci"], 1),
                "note": item.get("note"),
            }
        )
    records.append(
        {"measure": "p_fisher", "value": table["p"], "ci_low": None, "ci_high": None, "note": None}
    )
    frame = pd.DataFrame.from_records(records)
    frame.insert(0, "reference", table["reference"])
    frame.insert(0, "test", table["test"])
    return frame


def table_frames(result: dict) -> dict[str, pd.DataFrame]:
    """One DataFrame per table of a ``study_tables`` result."""
    import pandas as pd

    base = result["baseline"]
    frames = {
        "baseline": pd.DataFrame.from_records(
            [
                {**row, "display": format_n_percent(row["n"], row["denominator"])}
                for row in base["rows"]
            ]
        ),
        "continuous": pd.DataFrame.from_records(
            [{"key": key, **values} for key, values in base["continuous"].items()]
        ),
        "table1": _risk_rows(result["table1"]["rows"], ("key",)),
        "table2": _diagnostic(result["table2"]),
        "table3": _risk_rows(result["table3"]["rows"], ("exposure", "outcome")),
        "table4": _diagnostic(result["table4"]),
    }
    out = result["outcomes"]
    records = [
        {"measure": f"recanalization_{pop}", **share}
        for pop, share in out["recanalization"].items()
    ]
    records.append({"measure": "death_3m", **out["death_3m"]})
    records.append({"measure": "death_after_discharge", **out["death_after_discharge"]})
    for name in ("non_poor", "good"):
        records += [{"measure": f"{name}_{tp}", **share} for tp, share in out[name].items()]
    frames["outcomes"] = _with_rate_cis(pd.DataFrame.from_records(records), out["rates"])
    frames["mrs"] = pd.DataFrame.from_records(
        [
            {
                "timepoint": tp,
                **{f"mrs_{g}": n for g, n in enumerate(dist)},
                "missing": out["mrs_missing"][tp],
            }
            for tp, dist in out["mrs"].items()
        ]
    )
    sites = result["occlusion_sites"]
    frames["occlusion_sites"] = pd.DataFrame.from_records(
        [
            {
                "site": site,
                "label": str(ex.OCCLUSION_SITE_LABELS[site]),
                "mri": sites["mri"][site],
                "dsa": sites["dsa"][site],
            }
            for site in ex.OCCLUSION_SITES
        ]
        + [{"site": "missing", "label": "", **sites["missing"]}]
    )
    if "regression" in result:
        frames["regression"] = _regression(result["regression"])
    if "shift" in result:
        frames["shift"] = _shift(result["shift"])
    return frames


# The outcome sheet's measure of each of ``outcomes.rates``.
RATE_MEASURES = {
    "recanalization_all": "recanalization_all",
    "recanalization_anterior": "recanalization_anterior",
    "recanalization_posterior": "recanalization_posterior",
    "death_3m": "death_3m",
    "mrs_0_2_3m": "good_month3",
    "mrs_0_3_3m": "non_poor_month3",
}


def _with_rate_cis(frame: pd.DataFrame, rates: list[dict]) -> pd.DataFrame:
    """The outcome sheet with each rate's 95 % CI (in %) and its method."""
    by_measure = {RATE_MEASURES[rate["key"]]: rate for rate in rates}
    for column, value in (
        ("ci_low", lambda r: _ci(r["ci"], 0)),
        ("ci_high", lambda r: _ci(r["ci"], 1)),
        ("ci_method", lambda r: r["ci_method"]),
    ):
        frame[column] = [
            value(by_measure[m]) if m in by_measure else None for m in frame["measure"]
        ]
    return frame


def _regression(reg: dict) -> pd.DataFrame:
    """One row per covariate: adjusted and crude OR, and the model's account."""
    import pandas as pd

    return pd.DataFrame.from_records(
        [
            {
                "key": term["key"],
                "label": term["label"],
                "unit": term["unit"],
                "or": term["or"],
                "ci_low": _ci(term["ci"], 0),
                "ci_high": _ci(term["ci"], 1),
                "p": term["p"],
                "crude_or": term["crude_or"],
                "crude_ci_low": _ci(term["crude_ci"], 0),
                "crude_ci_high": _ci(term["crude_ci"], 1),
                "crude_p": term["crude_p"],
                "method": reg["method"],
                "ci_method": reg["ci_method"],
                "p_method": reg["p_method"],
                "c_statistic": reg["c_statistic"],
                "n": reg["n"],
                "events": reg["events"],
                "events_per_covariate": reg["events_per_covariate"],
                "note": term.get("note") or reg["note"],
            }
            for term in reg["terms"]
        ]
    )


def _shift(shift: dict) -> pd.DataFrame:
    """One row per Table I exposure: crude and adjusted common OR of a worse mRS."""
    import pandas as pd

    return pd.DataFrame.from_records(
        [
            {
                "key": row["key"],
                "label": row["label"],
                "population": row["population"],
                "n": row["n"],
                "common_or": row["common_or"],
                "ci_low": _ci(row["ci"], 0),
                "ci_high": _ci(row["ci"], 1),
                "p": row["p"],
                "adjusted_n": row["adjusted_n"],
                "adjusted_or": row["adjusted_or"],
                "adjusted_ci_low": _ci(row["adjusted_ci"], 0),
                "adjusted_ci_high": _ci(row["adjusted_ci"], 1),
                "adjusted_p": row["adjusted_p"],
                "proportional_odds_doubtful": row["proportional_odds_doubtful"],
                "model": shift["model"],
                "ci_method": shift["ci_method"],
                "covariates": " ".join(shift["covariates"]),
                "note": row["note"],
                "adjusted_note": row["adjusted_note"],
            }
            for row in shift["rows"]
        ]
    )


REGISTRY_NAME = "Stroke registry: mechanical thrombectomy and rescue intracranial stenting"
ABOUT_SHEET = "About"


def about(result: dict) -> pd.DataFrame:
    """The sheet "About": what the tables were made from, language-neutral (codes, ISO
    8601 times), from a ``study_tables`` result with ``tables.add_provenance``."""
    import pandas as pd

    from .methods import software_versions

    filters = {f"filter_{key}": value or "all" for key, value in result["filters"].items()}
    rows = {
        "registry": REGISTRY_NAME,
        "generated_at": result["generated_at"],
        "data_as_of": result.get("data_as_of") or "",
        **filters,
        "followup_window": result.get("followup_window", "as_recorded"),
        "p_method": result["p_method"],
        "covariates": ",".join(result.get("regression", {}).get("covariates", [])),
        "n_patients": result["n_patients"],
        "software": ", ".join(f"{name} {number}" for name, number in software_versions()),
    }
    return pd.DataFrame({"item": list(rows), "value": [str(v) for v in rows.values()]})


def file_name(stem: str, fmt: str, filters: dict, generated_at: str) -> str:
    """``study-table1_2026-12-07_1512_site-A_from-2020-01-01.csv``: the generation date
    and time (local) and every filter set, so that a file says what it was made from."""
    day, _t, clock = generated_at.partition("T")
    parts = [stem, day, clock[:5].replace(":", "")]
    for key, value in filters.items():
        if value:
            parts.append(f"{key}-{value}".replace(" ", "_"))
    return "_".join(part for part in parts if part) + f".{fmt}"


def to_csv(frames: dict[str, pd.DataFrame]) -> str:
    """One block per table: a ``# name`` line, the header and rows, a blank line."""
    buffer = io.StringIO()
    for name, frame in frames.items():
        buffer.write(f"# {name}\n")
        frame.to_csv(buffer, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        buffer.write("\n")
    return buffer.getvalue()


def to_xlsx(frames: dict[str, pd.DataFrame], about: pd.DataFrame | None = None) -> bytes:
    """One sheet per table (openpyxl), after the sheet "About" when ``about`` is given."""
    import pandas as pd

    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        if about is not None:
            about.to_excel(writer, sheet_name=ABOUT_SHEET, index=False)
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False)
    return buffer.getvalue()


def quality_frames(result: dict) -> dict[str, pd.DataFrame]:
    """The quality indicators (``analytics.quality``) as two flat tables: the time
    indicators (one column per threshold's numerator, denominator and percent) and the
    rate indicators."""
    import pandas as pd

    times, rates = [], []
    for row in result["rows"]:
        flat = {key: value for key, value in row.items() if key != "within"}
        for threshold, share in row.get("within", {}).items():
            for key, value in share.items():
                flat[f"within_{threshold}_{key}"] = value
        (times if row["kind"] == "time" else rates).append(flat)
    return {"quality_times": pd.DataFrame(times), "quality_rates": pd.DataFrame(rates)}
