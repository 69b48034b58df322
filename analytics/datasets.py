"""The only module of ``analytics`` that reads the registry.

Everything the study tables need is counted inside the database with
conditional aggregation: all the cells of all the tables in ONE
``SELECT COUNT(CASE WHEN ... THEN 1 END), ...`` query over one row per patient,
whatever the number of patients; the few columns that need the individual values
(ages for the median, the regression's design matrix) are read together with one
``values_list`` query (``study_columns``). No model instance is loaded.

A count is identified by a *cell id* such as ``"table1:age_70_plus:exposed_events"``.
The same condition (a ``Cond`` on the per-patient row) counts the cell and lists
the patients behind it (drill-down), so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.lookups import Exact
from django.utils import timezone

from registry import access

try:  # a read replica for the analytics when ANALYTICS_DATABASE_URL is set
    from config.db_router import analytics_db_alias
except ImportError:  # pragma: no cover - a registry without the replica router

    def analytics_db_alias() -> str:
        return DEFAULT_DB_ALIAS


from registry.derived import intervals
from registry.flow import flow_counts
from registry.models import Patient
from registry.workflow_models import ScreeningEntry

from . import exposures as ex

TABLES = ("baseline", "table1", "table2", "table3", "table4", "outcomes", "occlusion_sites")
CELL_NAMES_2X2 = ("exposed_n", "exposed_events", "unexposed_n", "unexposed_events", "missing")


@dataclass(frozen=True)
class Filters:
    """What the investigator asked for: site code, door-date range, circulation."""

    site: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    circulation: str | None = None

    def as_contract(self) -> dict[str, object]:
        """The ``filters`` object of the JSON contract."""
        return {
            "site": self.site,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "circulation": self.circulation,
        }

    def as_query(self) -> dict[str, str]:
        """The filters as GET parameters (the report form's field names)."""
        values = {key: value for key, value in asdict(self).items() if value}
        return {key: str(value) for key, value in values.items()}


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the registry's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def patients(
    user=None, filters: Filters | None = None, *, excluded: bool | None = False
) -> QuerySet[Patient]:
    """The analysis set: patients the user may read (all when ``user`` is None), filtered.

    Patients excluded from the analysis after enrolment (an exclusion in force, e.g.
    lost to follow-up) are left out; ``excluded=True`` gives only those instead, and
    ``excluded=None`` both.

    Parameters
    ----------
    user : User or None
        None for a management command run by the registry's operator.
    filters : Filters
        Site code, door-date range (``date_to`` inclusive, in the registry's
        time zone; patients without a door time are left out when a date is
        given) and circulation.
    """
    filters = filters or Filters()
    queryset = Patient.objects.all() if user is None else access.patients_for(user)
    # The study tables scan every patient: on a busy registry they read a replica.
    queryset = queryset.using(analytics_db_alias())
    if excluded is True:
        queryset = queryset.filter(exclusion__active=True)
    elif excluded is False:
        queryset = queryset.exclude(exclusion__active=True)
    if filters.site:
        queryset = queryset.filter(site__code=filters.site)
    if filters.date_from:
        queryset = queryset.filter(admission__door_time__gte=_day_start(filters.date_from))
    if filters.date_to:
        next_day = filters.date_to + dt.timedelta(days=1)
        queryset = queryset.filter(admission__door_time__lt=_day_start(next_day))
    if filters.circulation:
        queryset = queryset.filter(imaging__circulation=filters.circulation)
    return queryset


# -- conditions ------------------------------------------------------------------------------
#
# Counting happens in two levels inside the database: an inner query (compiled by the
# ORM from the registry's derived expressions) gives one row per patient with every
# variable as 1 / 0 / NULL, and the outer query counts each cell with
# ``COUNT(CASE WHEN <condition> THEN 1 END)``. Each derived expression is thus
# evaluated once per patient, however many cells use it, and building the query costs
# a few milliseconds. A ``Cond`` is a condition on the inner query's columns.


@dataclass(frozen=True)
class Cond:
    """A SQL condition on the per-patient columns (``%s`` placeholders + params)."""

    sql: str
    params: tuple = ()

    def __and__(self, other: Cond) -> Cond:
        if other is ALWAYS:
            return self
        if self is ALWAYS:
            return other
        return Cond(f"({self.sql} AND {other.sql})", self.params + other.params)

    def __or__(self, other: Cond) -> Cond:
        return Cond(f"({self.sql} OR {other.sql})", self.params + other.params)


ALWAYS = Cond("1 = 1")

# Plain columns the cells compare with a value: name -> database path.
RAW_COLUMNS = {
    "circulation": "imaging__circulation",
    **{f"mrs_{tp}": path for tp, (path, _label) in ex.MRS_TIMEPOINTS.items()},
    **{f"site_{method}": path for method, path in ex.OCCLUSION_PATHS.items()},
}


def alias(key: str) -> str:
    """Column of a variable (prefixed: never clashes with a model field)."""
    return f"v_{key}"


def _column(name: str) -> str:
    return connection.ops.quote_name(name)


def is_(key: str, value: bool | None) -> Cond:
    """Variable ``key`` is True, False, or (``None``) not recorded."""
    column = _column(alias(key))
    if value is None:
        return Cond(f"{column} IS NULL")
    return Cond(f"{column} = {1 if value else 0}")


def recorded(key: str) -> Cond:
    return Cond(f"{_column(alias(key))} IS NOT NULL")


def equals(name: str, value) -> Cond:
    """Raw column ``name`` (a key of ``RAW_COLUMNS``) equals ``value``."""
    return Cond(f"{_column('r_' + name)} = %s", (value,))


def blank(name: str) -> Cond:
    return Cond(f"{_column('r_' + name)} IS NULL")


def population(name: str) -> Cond:
    return ALWAYS if name == "all" else equals("circulation", name)


def two_by_two(
    prefix: str, exposure: str, outcome: str, pop: str = "all", *, outcome_first: bool = True
) -> dict[str, Cond]:
    """Cells of an exposure x outcome table.

    With ``outcome_first`` (Table I) the table is over the patients with the
    outcome recorded and ``missing`` counts those of them without the exposure;
    otherwise ``missing`` counts the patients lacking either value (Table III).
    """
    base = population(pop) & recorded(outcome)
    exposed = base & is_(exposure, True)
    unexposed = base & is_(exposure, False)
    if outcome_first:
        missing = base & is_(exposure, None)
    else:
        missing = population(pop) & (is_(exposure, None) | is_(outcome, None))
    return {
        f"{prefix}:exposed_n": exposed,
        f"{prefix}:exposed_events": exposed & is_(outcome, True),
        f"{prefix}:unexposed_n": unexposed,
        f"{prefix}:unexposed_events": unexposed & is_(outcome, True),
        f"{prefix}:missing": missing,
    }


def _table1_cells() -> dict[str, Cond]:
    outcome = ex.TABLE1_OUTCOME
    cells = {
        "table1:analysed": recorded(outcome),
        "table1:missing_outcome": is_(outcome, None),
    }
    for row in ex.TABLE1_ROWS:
        cells.update(two_by_two(f"table1:{row.key}", row.key, outcome, row.population))
    return cells


def _table3_cells() -> dict[str, Cond]:
    cells = {}
    for exposure in ex.TABLE3_EXPOSURES:
        for outcome in ex.TABLE3_OUTCOMES:
            prefix = f"table3:{exposure}:{outcome}"
            cells.update(two_by_two(prefix, exposure, outcome, outcome_first=False))
    return cells


def _diagnostic_cells(diagnostic: ex.Diagnostic) -> dict[str, Cond]:
    test, ref = diagnostic.test_variable, diagnostic.reference_variable
    key = diagnostic.key
    return {
        f"{key}:tp": is_(test, True) & is_(ref, True),
        f"{key}:fp": is_(test, True) & is_(ref, False),
        f"{key}:fn": is_(test, False) & is_(ref, True),
        f"{key}:tn": is_(test, False) & is_(ref, False),
        f"{key}:missing": is_(test, None) | is_(ref, None),
    }


def _baseline_cells() -> dict[str, Cond]:
    cells = {"baseline:patients": ALWAYS}
    for key in ex.BASELINE_ROWS:
        cells[f"baseline:{key}:n"] = is_(key, True)
        cells[f"baseline:{key}:denominator"] = recorded(key)
        cells[f"baseline:{key}:missing"] = is_(key, None)
    return cells


def _outcome_cells() -> dict[str, Cond]:
    cells = {}
    for pop in ex.RECANALIZATION_POPULATIONS:
        cells[f"outcomes:recanalization:{pop}:n"] = population(pop) & is_("recanalized", True)
        cells[f"outcomes:recanalization:{pop}:denominator"] = population(pop) & recorded(
            "recanalized"
        )
    cells["outcomes:death_3m:n"] = is_("death_3m", True)
    cells["outcomes:death_3m:denominator"] = recorded("death_3m")
    # Died between discharge and 3 months (alive at discharge, mRS 6 at 3 months).
    alive_at_discharge = Cond(f"{_column('r_mrs_discharge')} < %s", (6,))
    cells["outcomes:death_after_discharge:n"] = is_("death_3m", True) & alive_at_discharge
    for timepoint in ex.MRS_TIMEPOINTS:
        for grade in ex.MRS_GRADES:
            cells[f"outcomes:mrs:{timepoint}:{grade}"] = equals(f"mrs_{timepoint}", grade)
        cells[f"outcomes:mrs:{timepoint}:missing"] = blank(f"mrs_{timepoint}")
    return cells


def _occlusion_cells() -> dict[str, Cond]:
    cells = {}
    for method in ex.OCCLUSION_PATHS:
        for site in ex.OCCLUSION_SITES:
            cells[f"occlusion_sites:{method}:{site}"] = equals(f"site_{method}", site)
        cells[f"occlusion_sites:{method}:missing"] = blank(f"site_{method}")
    return cells


CELL_BUILDERS = {
    "baseline": _baseline_cells,
    "table1": _table1_cells,
    "table2": lambda: _diagnostic_cells(ex.TABLE2),
    "table3": _table3_cells,
    "table4": lambda: _diagnostic_cells(ex.TABLE4),
    "outcomes": _outcome_cells,
    "occlusion_sites": _occlusion_cells,
}


def cells(table: str) -> dict[str, Cond]:
    """Every count of ``table`` by cell id (KeyError for an unknown table)."""
    return CELL_BUILDERS[table]()


def cell_condition(cell_id: str) -> Cond:
    """The condition of one cell (KeyError when there is no such cell)."""
    table = cell_id.split(":", 1)[0]
    if table not in CELL_BUILDERS:
        raise KeyError(cell_id)
    return cells(table)[cell_id]


# -- queries ---------------------------------------------------------------------------------


def _as_int(expression) -> Case:
    """A three-valued boolean expression as 1 / 0 / NULL (portable comparisons)."""
    return Case(
        When(Exact(expression, True), then=Value(1)),
        When(Exact(expression, False), then=Value(0)),
        default=Value(None),
        output_field=IntegerField(null=True),
    )


_PER_PATIENT_SQL: dict[tuple[str, str], tuple[str, tuple]] = {}


def _all_patients_sql(using: str) -> tuple[str, tuple]:
    """SQL of one row per registry patient: pk, each variable (1/0/NULL), raw columns.

    It does not depend on the user or the filters, so it is compiled once per
    database (building ~60 expressions with the ORM costs more than the query).
    """
    key = (using, connections[using].vendor)
    if key not in _PER_PATIENT_SQL:
        variables = {alias(k): _as_int(e) for k, e in ex.variable_expressions().items()}
        raw = {f"r_{name}": F(path) for name, path in RAW_COLUMNS.items()}
        inner = Patient.objects.using(using).order_by().annotate(r_pk=F("pk"), **variables, **raw)
        inner = inner.values("r_pk", *variables, *raw)
        sql, params = inner.query.sql_with_params()
        _PER_PATIENT_SQL[key] = (sql, tuple(params))
    return _PER_PATIENT_SQL[key]


def per_patient_sql(queryset: QuerySet) -> tuple[str, tuple]:
    """The per-patient rows restricted to ``queryset`` (access and filters)."""
    sql, params = _all_patients_sql(queryset.db)
    selected, selected_params = queryset.order_by().values("pk").query.sql_with_params()
    restricted = f"SELECT * FROM ({sql}) all_patients WHERE r_pk IN ({selected})"
    return restricted, (*params, *selected_params)


def _supports_materialized(connection_) -> bool:
    """``WITH ... AS MATERIALIZED``: PostgreSQL 12+, SQLite 3.35+."""
    if connection_.vendor == "postgresql":
        return connection_.pg_version >= 120000
    if connection_.vendor == "sqlite":
        return connection_.Database.sqlite_version_info >= (3, 35, 0)
    return False


def count(queryset: QuerySet, conditions: dict[str, Cond]) -> dict[str, int]:
    """Count every condition in ONE query.

    Returns
    -------
    dict
        Cell id -> exact count.
    """
    if not conditions:
        return {}
    if queryset.query.is_empty():  # e.g. no access at all: nothing to ask the database
        return dict.fromkeys(conditions, 0)
    inner, params = per_patient_sql(queryset)
    selects, select_params = [], []
    for condition in conditions.values():
        selects.append(f"COUNT(CASE WHEN {condition.sql} THEN 1 END)")
        select_params.extend(condition.params)
    connection_ = connections[queryset.db]
    # MATERIALIZED: otherwise the planner inlines each derived expression into every
    # COUNT that uses it (6x slower at 20,000 patients on SQLite).
    materialized = "MATERIALIZED " if _supports_materialized(connection_) else ""
    sql = (
        f"WITH per_patient AS {materialized}({inner}) SELECT {', '.join(selects)} FROM per_patient"
    )
    with connection_.cursor() as cursor:
        cursor.execute(sql, (*params, *select_params))
        values = cursor.fetchone()
    return {cell_id: int(value or 0) for cell_id, value in zip(conditions, values, strict=True)}


def count_table(queryset: QuerySet, table: str) -> dict[str, int]:
    """All counts of one table, one query."""
    return count(queryset, cells(table))


def count_tables(queryset: QuerySet, tables: Iterable[str] = TABLES) -> dict[str, int]:
    """All counts of several tables in one query."""
    conditions: dict[str, Cond] = {}
    for table in tables:
        conditions.update(cells(table))
    return count(queryset, conditions)


def flow(user=None, filters: Filters | None = None) -> dict[str, object]:
    """Counts of the flow chart (screened -> excluded -> enrolled -> analysed), two queries.

    The patients are those of the user and filters *including* the ones excluded after
    enrolment (the chart shows them); screening entries follow the site filter and the
    date range applied to the screening date.
    """
    filters = filters or Filters()
    enrolled = patients(user, filters, excluded=None)
    screening = (
        ScreeningEntry.objects.all() if user is None else access.screening_for(user)
    ).using(analytics_db_alias())
    if filters.site:
        screening = screening.filter(site__code=filters.site)
    if filters.date_from:
        screening = screening.filter(screening_date__gte=filters.date_from)
    if filters.date_to:
        screening = screening.filter(screening_date__lte=filters.date_to)
    return flow_counts(enrolled, screening)


def drilldown(queryset: QuerySet, cell_id: str) -> QuerySet:
    """The patients counted in ``cell_id`` (KeyError for an unknown cell).

    The same condition as the count, on the same per-patient query, so the list and
    the number agree. Returns a ``values()`` queryset, never model instances.
    """
    condition = cell_condition(cell_id)
    if queryset.query.is_empty():
        return queryset.values("pk", "study_id")
    inner, params = per_patient_sql(queryset)
    pks = RawSQL(
        f"SELECT r_pk FROM ({inner}) per_patient WHERE {condition.sql}",
        (*params, *condition.params),
    )
    return (
        queryset.filter(pk__in=pks)
        .order_by("study_id")
        .values(
            "pk",
            "study_id",
            "site__code",
            "age_years",
            "sex",
            "imaging__circulation",
            "admission__door_time",
            "followup__mrs_3m",
        )
    )


def _continuous_annotations() -> dict[str, object]:
    spans = intervals()
    return {"c_onset_to_door": spans["onset_to_door"], "c_procedure": spans["procedure_duration"]}


_CONTINUOUS_FIELDS = ("age_years", "admission__nihss_admission", "c_onset_to_door", "c_procedure")


def _continuous_from(columns: list[tuple]) -> dict[str, list[float | None]]:
    """The four continuous columns (``_CONTINUOUS_FIELDS`` order), intervals in hours/minutes."""

    def seconds(values, unit: float) -> list[float | None]:
        return [None if v is None else v.total_seconds() / unit for v in values]

    age, nihss, onset_to_door, procedure = columns
    return {
        "age": list(age),
        "nihss_admission": list(nihss),
        "onset_to_door_hours": seconds(onset_to_door, 3600.0),
        "procedure_minutes": seconds(procedure, 60.0),
    }


def _transpose(rows: list[tuple], width: int) -> list[tuple]:
    """Rows -> columns (``width`` empty columns when there is no row)."""
    return list(zip(*rows, strict=True)) if rows else [()] * width


def study_columns(
    queryset: QuerySet, keys: Iterable[str]
) -> tuple[dict[str, list[float | None]], dict[str, list]]:
    """``continuous_columns`` and ``frame_columns(keys)`` together, ONE query.

    The study tables need both; one scan of the joined sections instead of two.
    """
    keys = list(dict.fromkeys(keys))
    expressions = ex.variable_expressions()
    annotated = queryset.annotate(
        **_continuous_annotations(), **{alias(k): expressions[k] for k in keys}
    )
    fields = (*_CONTINUOUS_FIELDS, *(alias(k) for k in keys))
    rows = list(annotated.order_by("pk").values_list(*fields))
    columns = _transpose(rows, len(fields))
    n = len(_CONTINUOUS_FIELDS)
    binary = {key: list(columns[n + i]) for i, key in enumerate(keys)}
    return _continuous_from(columns[:n]), binary


def frame_columns(queryset: QuerySet, keys: Iterable[str]) -> dict[str, list]:
    """Per-patient values of binary variables (True/False/None), one query.

    Used for the regression's design matrix; the caller builds the DataFrame.
    """
    keys = list(dict.fromkeys(keys))
    expressions = ex.variable_expressions()
    annotated = queryset.annotate(**{alias(k): expressions[k] for k in keys})
    rows = list(annotated.order_by("pk").values_list(*(alias(k) for k in keys)))
    columns = _transpose(rows, len(keys))
    return {key: list(column) for key, column in zip(keys, columns, strict=True)}


def continuous_columns(queryset: QuerySet) -> dict[str, list[float | None]]:
    """Age, NIHSS, onset-to-door hours and procedure minutes per patient, one query."""
    annotated = queryset.annotate(**_continuous_annotations())
    rows = list(annotated.order_by("pk").values_list(*_CONTINUOUS_FIELDS))
    return _continuous_from(_transpose(rows, len(_CONTINUOUS_FIELDS)))
