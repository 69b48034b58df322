"""Quality of care per site and period: the registry read once, the indicators computed
(``analytics.indicators``), laid out as the JSON contract of
``../shared/spec/quality-indicators.md``.

Each patient's facts (``facts()``: its door time, each time indicator's interval in
seconds, the conditions the rates count as the bits of one number) are stored beside
its sections (``registry.models.QualityFacts``, kept by ``facts_refresh`` whenever
sections are written). ONE query reads them for the patients the user may read whose
door date is in the window (the study tables' population: ``datasets.patients``), one
row each with its site; the door date's quarter and whether the follow-up window has
closed are worked out in the registry's time zone; sites, periods and indicators are
then counted with numpy, so the number of queries does not grow with patients or sites.
The /quality/ page's numbers are remembered until the data change (``page``): the page
and its figures ask for the same numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import operator
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.db.models import Case, DurationField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from registry import access, rules

from . import datasets, pgread
from . import indicators as qi

PERIODS = ("all", "year", "quarter")
TIMES = {
    "onset_time": "admission__onset_time",
    "door_time": "admission__door_time",
    "imaging_time": "admission__imaging_time",
    "needle_time": "admission__needle_time",
    "groin_puncture_time": "procedure__groin_puncture_time",
    "reperfusion_time": "procedure__reperfusion_time",
}


def _recorded(*paths: str) -> Q:
    """Every one of ``paths`` recorded (a code is never blank: the database's
    constraints allow its choices or NULL)."""
    return Q(**{f"{path}__isnull": False for path in paths})


_SICH_RECORDED = _recorded("complications__sich") | Q(complications__ich=False)
# The per-patient conditions the rate indicators count (spec: "Rate indicators"), each
# one bit of one whole number the database computes.
MASKS = {
    "thrombolysed": Q(admission__iv_thrombolysis=True),
    "recanalized": Q(procedure__final_mtici__in=qi.RECANALIZED),
    "mtici_recorded": _recorded("procedure__final_mtici"),
    "first_pass": Q(procedure__mt_passes=1, procedure__mtici_after_mt__in=qi.RECANALIZED),
    "first_pass_eligible": Q(procedure__mt_performed=True)
    & _recorded("procedure__mt_passes", "procedure__mtici_after_mt"),
    "sich": Q(complications__sich=True),
    "sich_recorded": _SICH_RECORDED,
    "mrs_0_2": Q(followup__mrs_3m__lte=2),
    "dead_3m": Q(followup__mrs_3m=6),
    "mrs_3m_recorded": _recorded("followup__mrs_3m"),
    "dataset_complete": _recorded(
        TIMES["onset_time"],
        TIMES["door_time"],
        TIMES["groin_puncture_time"],
        "procedure__final_mtici",
        "complications__discharge_mrs",
        "followup__mrs_3m",
    )
    & _SICH_RECORDED,
}
# The page's numbers are remembered at most this long: a write that leaves no history
# row (a data migration, SQL by hand) shows within this time.
REMEMBERED_SECONDS = 600


def targets() -> dict[str, float | None]:
    """The rate indicators' targets: the defaults, overridden by ``QUALITY_TARGETS``."""
    return {**qi.DEFAULT_TARGETS, **getattr(settings, "QUALITY_TARGETS", {})}


def award_thresholds() -> dict:
    """The award levels: the defaults, overridden by ``QUALITY_AWARD_THRESHOLDS``."""
    return {**qi.DEFAULT_AWARD_THRESHOLDS, **getattr(settings, "QUALITY_AWARD_THRESHOLDS", {})}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _seconds_between(end, start) -> datasets.Seconds:
    return datasets.Seconds(ExpressionWrapper(end - start, output_field=DurationField()))


def facts() -> dict[str, object]:
    """Each patient's facts (``registry.models.QualityFacts``) as expressions on the
    patient queryset: the door time and the start of the follow-up window (the onset,
    else the door time) as seconds since 1970 UTC, each time indicator's interval in
    seconds, and the conditions of ``MASKS`` as the bits of one number."""
    epoch = Value(_EPOCH)
    intervals = {
        f"s_{i.code}": _seconds_between(F(TIMES[i.end]), F(TIMES[i.start]))
        for i in qi.TIME_INDICATORS
    }
    bits = [
        Case(When(condition, then=Value(1 << bit)), default=Value(0))
        for bit, condition in enumerate(MASKS.values())
    ]
    return {
        "door_seconds": _seconds_between(F(TIMES["door_time"]), epoch),
        "start_seconds": _seconds_between(
            Coalesce(F(TIMES["onset_time"]), F(TIMES["door_time"])), epoch
        ),
        **intervals,
        "conditions": functools.reduce(operator.add, bits),
    }


def facts_refresh(*, patient_ids=None, using: str = "default") -> None:
    """Write the facts (``facts()``) of these patients (all when None) of the database
    ``using``: their rows deleted, then computed by ``INSERT ... SELECT`` (of the
    patients listed, ``FACTS_CHUNK`` a statement)."""
    from registry.models import Patient, QualityFacts

    stored = QualityFacts.objects.using(using)
    patients = Patient.objects.using(using).order_by()
    if patient_ids is not None:
        keys = sorted(set(patient_ids))
        for start in range(0, len(keys), FACTS_CHUNK):
            chunk = keys[start : start + FACTS_CHUNK]
            stored.filter(pk__in=chunk)._raw_delete(using)
            _facts_insert(patients.filter(pk__in=chunk), using)
        return
    stored.all()._raw_delete(using)
    _facts_insert(patients, using)  # one statement: the database joins whole tables best
    if connections[using].vendor == "postgresql":
        # The planner joins the new rows well only once it knows how many there are.
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"ANALYZE {connections[using].ops.quote_name(QualityFacts._meta.db_table)}"
            )


# Patients a statement: few enough keys for SQLite's limit of parameters (32,766).
FACTS_CHUNK = 10_000


def _facts_insert(patients, using: str) -> None:
    from registry.models import QualityFacts

    expressions = facts()
    sql, params = datasets.compiled(
        patients.annotate(**expressions).values_list("pk", *expressions)
    )
    connection_ = connections[using]
    quote = connection_.ops.quote_name
    names = ", ".join(quote(n) for n in ["patient_id", *expressions])
    table = quote(QualityFacts._meta.db_table)
    with connection_.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) {sql}", params)


def on_sections_written(sender, *, patient_ids, using, **kwargs) -> None:
    """``registry.signals.sections_written``: the facts follow the sections."""
    facts_refresh(patient_ids=patient_ids, using=using)


def _read_columns() -> dict[str, object]:
    """What is read of each patient: its id, site and stored facts: few short numbers,
    since formatting, sending and parsing a million rows is most of the read."""
    stored = {name: F(f"quality_facts__{name}") for name in facts() if name != "conditions"}
    return {
        "q_pk": F("pk"),
        "c_site": F("site__code"),
        **stored,
        # A patient without a row has no section: no condition holds.
        "b_masks": Coalesce(F("quality_facts__conditions"), Value(0)),
    }


def _dtypes(names) -> dict[str, str]:
    kinds = {"q": "int64", "c": "category", "s": "float64", "d": "float64", "b": "int64"}
    return {name: kinds[name[0]] for name in names}


def read(user=None, filters: datasets.Filters | None = None, *, today: dt.date | None = None):
    """The per-patient frame of the population: ONE query (COPY on PostgreSQL, on
    several connections for a large registry as the study tables are read) of the
    stored facts; the door quarter and whether the follow-up window has closed are
    computed here, in the registry's time zone."""
    import pandas as pd

    queryset = datasets.patients(user, filters)
    annotations = _read_columns()
    dtypes = _dtypes(annotations)
    if queryset.query.is_empty():
        frame = pd.DataFrame({name: pd.Series(dtype=t) for name, t in dtypes.items()})
    else:
        frame = _read_rows(queryset, annotations, dtypes)
    return _with_local_dates(frame, today or timezone.localdate())


def _read_rows(queryset, annotations: dict, dtypes: dict):
    import pandas as pd

    rows = queryset.order_by().annotate(**annotations)
    sql, params = datasets.compiled(rows.values_list(*annotations))
    connection_ = connections[queryset.db]
    if connection_.vendor == "postgresql":
        return pgread.read(
            queryset.db,
            (sql, tuple(params)),
            dtypes,
            ranged=lambda: _ranged_sql(rows, list(annotations)),
        )
    with connection_.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=list(dtypes))
    return frame.astype(dtypes)


def _with_local_dates(frame, today: dt.date):
    """``frame`` with the door date's quarter (``p_quarter``: ``year * 4 + quarter - 1``)
    and, as bit ``WINDOW_BIT`` of ``b_masks``, whether the 3-month window has closed by
    ``today`` (FOLLOWUP_DAYS + the window's days after the local onset date, or door
    date when the onset is unknown): local dates in the registry's time zone
    (``rules.local_date``), whoever is looking."""
    import numpy as np
    import pandas as pd

    zone = timezone.get_default_timezone()
    door = pd.DatetimeIndex(pd.to_datetime(frame.pop("door_seconds"), unit="s", utc=True))
    door = door.tz_convert(zone)
    frame["p_quarter"] = np.where(door.isna(), np.nan, door.year * 4 + door.quarter - 1)
    start = pd.DatetimeIndex(pd.to_datetime(frame.pop("start_seconds"), unit="s", utc=True))
    start_day = start.tz_convert(zone).tz_localize(None).normalize()
    cutoff = pd.Timestamp(today - dt.timedelta(days=rules.FOLLOWUP_DAYS + rules.window_days()))
    closed = np.asarray(start_day < cutoff, dtype=bool)  # an unknown date: not closed
    frame["b_masks"] = frame["b_masks"].to_numpy(dtype=np.int64) | (closed << WINDOW_BIT)
    return frame


WINDOW_BIT = len(MASKS)


def _ranged_sql(rows, names: list[str]) -> tuple[str, tuple]:
    """The read as a template for one range of patient ids (``pgread.range_template``)."""
    sql, params = datasets.compiled(
        rows.annotate(r_range_pk=F("pk")).values_list(*names, "r_range_pk")
    )
    return pgread.range_template(sql, names), tuple(params)


NO_PERIOD = -1


@dataclass
class Columns:
    """The per-patient columns the indicators count (numpy arrays, one row a patient).

    ``site`` indexes ``site_codes``; ``quarter`` numbers the door date's quarter
    (``year * 4 + quarter - 1``; ``NO_PERIOD`` without a door time): whole numbers group
    a million patients far faster than their labels would. ``seconds``: each time
    indicator's interval (NaN when a time is not recorded); ``masks``: ``MASKS`` and
    ``window_closed``."""

    pk: object
    site: object
    site_codes: tuple
    quarter: object
    seconds: dict
    masks: dict

    def at_site(self, code: str):
        """Whether each patient is of site ``code``."""
        import numpy as np

        if code not in self.site_codes:
            return np.zeros(len(self.pk), dtype=bool)
        return self.site == self.site_codes.index(code)

    def in_period(self, label: str):
        """Whether each patient's door date is in ``label`` (``2024`` or ``2024-Q1``)."""
        if len(label) == 4:
            return (self.quarter // 4 == int(label)) & (self.quarter != NO_PERIOD)
        return self.quarter == quarter_number(label)

    def minutes(self, indicator: qi.TimeIndicator, rows=None):
        """The minutes of ``indicator`` of the patients ``rows`` (all by default) who
        count: both times recorded, the interval >= 0, and in its subgroup."""
        import numpy as np

        rows = slice(None) if rows is None else rows
        minutes = self.seconds[indicator.code][rows] / 60.0
        keep = ~np.isnan(minutes) & (minutes >= 0)
        if indicator.only:
            keep &= self.masks[indicator.only][rows]
        return minutes, keep


def quarter_label(number: int) -> str:
    return f"{number // 4}-Q{number % 4 + 1}"


def quarter_number(label: str) -> int:
    year, _sep, quarter = label.partition("-Q")
    return int(year) * 4 + int(quarter) - 1


def columns(frame) -> Columns:
    """The indicators' columns from :func:`read`'s frame."""
    import numpy as np

    quarter = frame["p_quarter"].to_numpy(dtype=float)
    bits = frame["b_masks"].to_numpy(dtype=np.int64)
    names = [*MASKS, "window_closed"]
    masks = {name: (bits & (1 << bit)) != 0 for bit, name in enumerate(names)}
    masks["followup_3m_complete"] = masks["mrs_3m_recorded"]
    sites = frame["c_site"].cat
    return Columns(
        pk=frame["q_pk"].to_numpy(dtype=np.int64),
        site=sites.codes.to_numpy(dtype=np.int64),
        site_codes=tuple(str(code) for code in sites.categories),
        quarter=np.where(np.isnan(quarter), NO_PERIOD, np.nan_to_num(quarter)).astype(np.int64),
        seconds={i.code: frame[f"s_{i.code}"].to_numpy(dtype=float) for i in qi.TIME_INDICATORS},
        masks=masks,
    )


def _split(keys, rows):
    """``rows`` grouped by ``keys`` (whole numbers, one per row): key -> row indices,
    in the rows' order within each group."""
    import numpy as np

    if not len(keys):
        return {}
    if keys.max() < np.iinfo(np.int16).max and keys.min() >= 0:
        keys = keys.astype(np.int16)  # a stable sort of 16-bit numbers is a radix sort
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    return dict(zip(values.tolist(), np.split(rows[order], starts[1:]), strict=True))


def _groups(cols: Columns, sites: list[str], period: str):
    """``(site, period, row indices)`` of every row of the contract, in its order."""
    import numpy as np

    everyone = np.arange(len(cols.pk))
    by_site = _split(cols.site, everyone) if len(everyone) else {}
    index = {code: i for i, code in enumerate(cols.site_codes)}
    keys = [(None, everyone)] + [(s, by_site.get(index.get(s), everyone[:0])) for s in sites]
    found = [(site, None, rows) for site, rows in keys]
    if period == "all":
        return found
    numbers = cols.quarter if period == "quarter" else cols.quarter // 4
    label = quarter_label if period == "quarter" else str
    periods = sorted(set(numbers[cols.quarter != NO_PERIOD].tolist()))
    for site, rows in keys:
        by_period = _split(numbers[rows], rows) if len(rows) else {}
        for number in periods:
            found.append((site, label(number), by_period.get(number, everyone[:0])))
    return found


def time_row(cols: Columns, indicator: qi.TimeIndicator, rows, thresholds: dict) -> dict:
    """The contract's row of one time indicator over patients ``rows`` (site and period
    added by the caller)."""
    minutes, keep = cols.minutes(indicator, rows)
    summary = qi.summarize_times(minutes[keep], indicator.thresholds)
    row = {
        "code": indicator.code,
        "kind": "time",
        "n": summary.n,
        "median": summary.median,
        "q1": summary.q1,
        "q3": summary.q3,
        "within": {
            str(t): {"numerator": w.numerator, "denominator": w.denominator, "percent": w.percent}
            for t, w in summary.within.items()
        },
    }
    if indicator.code in thresholds:
        row["award"] = qi.award(indicator.code, summary, thresholds)
    return row


def rate_row(cols: Columns, indicator: qi.RateIndicator, rows) -> dict:
    import numpy as np

    denominator = cols.masks[indicator.denominator][rows]
    numerator = cols.masks[indicator.numerator][rows] & denominator
    summary = qi.summarize_rate(
        int(np.count_nonzero(numerator)),
        int(np.count_nonzero(denominator)),
        indicator.target,
        at_most=indicator.at_most,
    )
    return {
        "code": indicator.code,
        "kind": "rate",
        "numerator": summary.numerator,
        "denominator": summary.denominator,
        "percent": summary.percent,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
        "target": summary.target,
        "met": summary.met,
    }


def readable_sites(user, site: str | None) -> list[str]:
    """The codes of the sites whose rows the report holds."""
    if site:
        return [site]
    sites = access.sites_for(user) if user is not None else None
    if sites is None:
        from registry.models import Site

        sites = Site.objects.all()
    return list(sites.order_by("code").values_list("code", flat=True))


def _placed(row: dict, site, period) -> dict:
    """The row with its site and period after its code and kind, as the spec lists them."""
    return {"code": row["code"], "kind": row["kind"], "site": site, "period": period, **row}


def indicator_rows(cols: Columns, sites: list[str], period: str) -> list[dict]:
    """Every row of the contract: each indicator for all sites together and per site,
    for the whole window and (``year`` / ``quarter``) per period."""
    thresholds = award_thresholds()
    rates = qi.rate_indicators(targets())
    found = []
    for site, label, rows in _groups(cols, sites, period):
        for indicator in qi.TIME_INDICATORS:
            found.append(_placed(time_row(cols, indicator, rows, thresholds), site, label))
        for indicator in rates:
            found.append(_placed(rate_row(cols, indicator, rows), site, label))
    return found


def quality_indicators(
    user=None, filters: datasets.Filters | None = None, *, period: str = "all", freeze=None
) -> dict:
    """The JSON contract (``../shared/spec/quality-indicators.md``).

    ``freeze``: computed from this data freeze (``datasets.source``), as of its date
    (whether a follow-up window has closed), with a top-level ``freeze`` object.
    """
    if period not in PERIODS:
        raise ValueError(f"period: one of {', '.join(PERIODS)}, not {period!r}")
    filters = filters or datasets.Filters()
    with datasets.source(freeze):
        today = timezone.localdate(freeze.created_at) if freeze is not None else None
        cols = columns(read(user, filters, today=today))
        # A freeze's sites are those of its rows: a site added since adds no row.
        if freeze is None:
            sites = readable_sites(user, filters.site)
        else:
            sites = [filters.site] if filters.site else sorted(freeze.site_codes)
    result = _contract(filters, period, cols, sites)
    if freeze is not None:
        result["freeze"] = datasets.freeze_contract(freeze)
    return result


def _contract(filters: datasets.Filters, period: str, cols: Columns, sites) -> dict:
    return {
        "filters": {
            "site": filters.site,
            "from": filters.date_from.isoformat() if filters.date_from else None,
            "to": filters.date_to.isoformat() if filters.date_to else None,
            "period": period,
        },
        "n_patients": len(cols.pk),
        "targets": targets(),
        "rows": indicator_rows(cols, sites, period),
    }


def patients_of(
    cols: Columns, code: str, part: str, *, site=None, period=None, threshold=None
) -> list[int]:
    """The pks counted by one number of the report (the drill-down): ``part`` is
    ``numerator``/``denominator`` of a rate, ``n`` or ``within`` (with ``threshold``) of a
    time indicator."""
    import numpy as np

    keep = np.ones(len(cols.pk), dtype=bool)
    if site:
        keep &= cols.at_site(site)
    if period:
        keep &= cols.in_period(period)
    times = {i.code: i for i in qi.TIME_INDICATORS}
    rates = {i.code: i for i in qi.rate_indicators()}
    if code in times:
        minutes, counted = cols.minutes(times[code])
        if part == "within":
            counted &= minutes <= float(threshold)
        elif part != "n":
            raise KeyError(part)
    elif code in rates:
        indicator = rates[code]
        counted = cols.masks[indicator.denominator].copy()
        if part == "numerator":
            counted &= cols.masks[indicator.numerator]
        elif part != "denominator":
            raise KeyError(part)
    else:
        raise KeyError(code)
    return cols.pk[keep & counted].tolist()


# -- the /quality/ page ---------------------------------------------------------------


def subset(cols: Columns, keep) -> Columns:
    """The columns of the patients ``keep`` (a boolean mask)."""
    return Columns(
        pk=cols.pk[keep],
        site=cols.site[keep],
        site_codes=cols.site_codes,
        quarter=cols.quarter[keep],
        seconds={name: values[keep] for name, values in cols.seconds.items()},
        masks={name: values[keep] for name, values in cols.masks.items()},
    )


def quarters_of(cols: Columns) -> list[str]:
    import numpy as np

    return [quarter_label(q) for q in np.unique(cols.quarter).tolist() if q != NO_PERIOD]


def run_chart_data(cols: Columns) -> dict[str, dict[str, dict[str, float]]]:
    """Each time indicator's median by quarter, per site: code -> site -> quarter -> min
    (type 7, as the rows' medians)."""
    import numpy as np

    dated = cols.quarter != NO_PERIOD
    quarters = cols.quarter[dated]
    # Numbered from the first quarter: small group numbers sort fastest (by radix).
    first = int(quarters.min()) if len(quarters) else 0
    span = int(quarters.max()) - first + 1 if len(quarters) else 1
    found = {}
    for indicator in qi.TIME_INDICATORS:
        minutes, keep = cols.minutes(indicator)
        rows = np.flatnonzero(keep & dated)
        # One small whole number per (site, quarter): all groups in one sort.
        groups = cols.site[rows] * span + (cols.quarter[rows] - first)
        present, medians = qi.grouped_medians(minutes[rows], groups)
        per_site: dict[str, dict[str, float]] = {}
        for group, median in zip(present.tolist(), medians.tolist(), strict=True):
            site, number = divmod(group, span)
            per_site.setdefault(cols.site_codes[site], {})[quarter_label(first + number)] = median
        found[indicator.code] = per_site
    return found


def funnel_data(rows: list[dict]) -> dict[str, dict]:
    """Per rate indicator: each site's numerator and denominator, the registry-wide
    percent (the all-sites row) and the control limits over the sites' range of sizes."""
    import numpy as np

    found = {}
    for indicator in qi.rate_indicators(targets()):
        mine = [r for r in rows if r["code"] == indicator.code and r["period"] is None]
        overall = next(r for r in mine if r["site"] is None)
        sites = [r for r in mine if r["site"] is not None and r["denominator"]]
        entry = {"sites": sites, "overall": overall["percent"], "limits": {}, "sizes": []}
        if overall["denominator"] and sites:
            largest = max(r["denominator"] for r in sites)
            sizes = np.unique(np.linspace(1, max(largest * 1.1, 10), 200).astype(int))
            entry["sizes"] = sizes.tolist()
            p = overall["numerator"] / overall["denominator"]
            for level, (low, high) in qi.funnel_limits(p, sizes).items():
                entry["limits"][level] = (low.tolist(), high.tolist())
        found[indicator.code] = entry
    return found


def page(user, filters: datasets.Filters, *, quarter: str | None = None) -> dict:
    """What the /quality/ page shows: the rows of the chosen quarter (or the whole
    window), the quarters to choose from, the run charts' and funnels' data.

    Remembered until the data change (``data_version``) for ``REMEMBERED_SECONDS`` at
    most, per user's sites, filters, quarter and day: the page and each of its figures
    ask for the same numbers, which would otherwise each read the registry again.
    """
    from django.core.cache import cache

    freeze = datasets.current_freeze()
    readable = readable_sites(user, None)
    sites = [filters.site] if filters.site else readable
    if freeze is None:
        today = timezone.localdate()
        version = data_version(datasets.patients(user, filters).db)
    else:
        # A freeze never changes: its hash is its version, its date the page's "today"
        # (as in ``quality_indicators``), and its sites those of its rows.
        today = timezone.localdate(freeze.created_at)
        version = ("freeze", freeze.sha256)
        if not filters.site:
            sites = sorted(freeze.site_codes)
    key = _page_key(readable, dataclasses.astuple(filters), quarter, today, version)
    data = cache.get(key)
    if data is None:
        data = _page(user, filters, sites, quarter, today)
        cache.set(key, data, REMEMBERED_SECONDS)
    return data


def _page(user, filters, sites: list[str], quarter: str | None, today: dt.date) -> dict:
    """:func:`page`'s numbers, computed."""
    cols = columns(read(user, filters, today=today))
    chosen = subset(cols, cols.in_period(quarter)) if quarter else cols
    rows = indicator_rows(chosen, sites, "all")
    return {
        "rows": rows,
        "sites": sites,
        "quarters": quarters_of(cols),
        "run_charts": run_chart_data(cols),
        "funnels": funnel_data(rows),
    }


def _page_key(*parts) -> str:
    """The cache key of a page's numbers: what they depend on, hashed (a cache key is
    short and plain)."""
    import hashlib

    text = repr((*parts, targets(), award_thresholds(), rules.window_days()))
    return "quality-page:" + hashlib.sha256(text.encode()).hexdigest()


def data_version(alias: str) -> tuple:
    """The newest history row of each table the indicators read: ONE query, on the
    primary keys' indexes. A write through the registry (a form, the import, the
    workflow) adds a history row, so a different answer means the data may have
    changed."""
    from registry.models import (
        Admission,
        Complications,
        FollowUp,
        Patient,
        PatientExclusion,
        Procedure,
    )

    connection_ = connections[alias]
    quote = connection_.ops.quote_name
    tables = [
        model.history.model._meta.db_table
        for model in (Patient, Admission, Procedure, Complications, FollowUp, PatientExclusion)
    ]
    newest = ", ".join(f"(SELECT MAX(history_id) FROM {quote(table)})" for table in tables)
    with connection_.cursor() as cursor:
        cursor.execute(f"SELECT {newest}")
        return tuple(cursor.fetchone())
