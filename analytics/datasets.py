"""The only module of ``analytics`` that reads the registry.

Everything the study tables need comes from ONE query, whatever the number of
patients (``fetch_columns``): one row per patient holding the study variables as
the database computes them from the registry's derived expressions, the raw
columns the cells compare and the continuous values (ages for the median...). On
a large PostgreSQL registry that query is shared by two connections, each reading
a range of patients on one exported snapshot (``_read_split``). The
cells of all the tables are then counted with numpy over those columns; the
regression's design matrix is taken from them too. No model instance is loaded.

A count is identified by a *cell id* such as ``"table1:age_70_plus:exposed_events"``.
The same condition (a ``Cond``) counts the cell and, as SQL on the per-patient
query, lists the patients behind it (drill-down); a test checks that the two agree
on every cell.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import itertools
import logging
import operator
import re
import select
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import (
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from registry import access

try:  # a read replica for the analytics when ANALYTICS_DATABASE_URL is set
    from config.db_router import analytics_db_alias
except ImportError:  # pragma: no cover - a registry without the replica router

    def analytics_db_alias() -> str:
        return DEFAULT_DB_ALIAS


from registry.derived import DEAD_MRS, intervals
from registry.models import Patient, PatientExclusion, PatientExclusionReason, ScreeningEntry
from registry.workflow.services import screening_counts

from . import exposures as ex
from .flow import enrolment_annotations, enrolment_counts, flow_from

logger = logging.getLogger(__name__)

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
    # EXISTS rather than a join on the exclusion: the planner then estimates the
    # patients left correctly and sizes the study tables' hash joins for them.
    excluded_now = Exists(PatientExclusion.objects.filter(patient=OuterRef("pk"), active=True))
    if excluded is True:
        queryset = queryset.filter(excluded_now)
    elif excluded is False:
        queryset = queryset.filter(~excluded_now)
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
# A count is computed from ONE fetch of the per-patient columns (``fetch_columns``): the
# registry's derived expressions are evaluated by the database, once per patient, and
# every cell is then counted with numpy over those columns. A ``Cond`` says what a cell
# counts twice over, from the same constructors: as SQL on the per-patient query (the
# drill-down lists the patients behind a count with it) and as a numpy mask on the
# fetched columns (the count). ``tests/test_datasets.py`` checks that both agree on
# every cell.


@dataclass(frozen=True)
class Cond:
    """A condition on the per-patient columns: SQL (``%s`` placeholders + params) and
    the same test as a numpy mask (``test(columns) -> bool array``)."""

    sql: str
    params: tuple = ()
    test: Callable[[PatientColumns], np.ndarray] | None = field(
        default=None, compare=False, repr=False
    )
    # The columns ``test`` reads: ("flag", variable) and ("raw", name) pairs, so that a
    # read for a few cells fetches only those (``Layout.for_conditions``).
    inputs: frozenset = field(default=frozenset(), compare=False, repr=False)

    @property
    def key(self) -> tuple:
        return (self.sql, self.params)

    def __and__(self, other: Cond) -> Cond:
        if other is ALWAYS:
            return self
        if self is ALWAYS:
            return other
        return Cond(
            f"({self.sql} AND {other.sql})",
            self.params + other.params,
            lambda c: c.mask(self) & c.mask(other),
            self.inputs | other.inputs,
        )

    def __or__(self, other: Cond) -> Cond:
        return Cond(
            f"({self.sql} OR {other.sql})",
            self.params + other.params,
            lambda c: c.mask(self) | c.mask(other),
            self.inputs | other.inputs,
        )


ALWAYS = Cond("1 = 1", (), lambda c: np.ones(c.n, dtype=bool))

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


# A variable's value as fetched: 0 = False, 1 = True, 2 = not recorded (NULL).
FALSE, TRUE, UNRECORDED = 0, 1, 2


def is_(key: str, value: bool | None) -> Cond:
    """Variable ``key`` is True, False, or (``None``) not recorded."""
    column, uses = _column(alias(key)), frozenset({("flag", key)})
    if value is None:
        return Cond(f"{column} IS NULL", (), lambda c: c.flags[key] == UNRECORDED, uses)
    code = TRUE if value else FALSE
    return Cond(f"{column} = {code}", (), lambda c: c.flags[key] == code, uses)


def recorded(key: str) -> Cond:
    return Cond(
        f"{_column(alias(key))} IS NOT NULL",
        (),
        lambda c: c.flags[key] != UNRECORDED,
        frozenset({("flag", key)}),
    )


def equals(name: str, value) -> Cond:
    """Raw column ``name`` (a key of ``RAW_COLUMNS``) equals ``value``."""
    return Cond(
        f"{_column('r_' + name)} = %s",
        (value,),
        lambda c: c.raw_equals(name, value),
        frozenset({("raw", name)}),
    )


def less_than(name: str, value: int) -> Cond:
    """Raw numeric column ``name`` is recorded and below ``value``."""
    return Cond(
        f"{_column('r_' + name)} < %s",
        (value,),
        lambda c: c.raw[name] < value,
        frozenset({("raw", name)}),
    )


def blank(name: str) -> Cond:
    return Cond(
        f"{_column('r_' + name)} IS NULL",
        (),
        lambda c: c.raw_blank(name),
        frozenset({("raw", name)}),
    )


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
    alive_at_discharge = less_than("mrs_discharge", DEAD_MRS)
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


def _as_int(expression) -> Cast:
    """A three-valued boolean expression as 1 / 0 / NULL (evaluated once, portable)."""
    return Cast(expression, IntegerField())


_PER_PATIENT_SQL: dict[tuple[str, str], tuple[str, tuple]] = {}


def _all_patients_sql(using: str) -> tuple[str, tuple]:
    """SQL of one row per registry patient: pk, each variable (1/0/NULL), raw columns.

    It does not depend on the user or the filters, so it is compiled once per
    database (building ~60 expressions with the ORM costs more than a small query).
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
    """The per-patient rows (SQL) restricted to ``queryset``: what ``Cond.sql`` reads."""
    sql, params = _all_patients_sql(queryset.db)
    selected, selected_params = queryset.order_by().values("pk").query.sql_with_params()
    restricted = f"SELECT * FROM ({sql}) all_patients WHERE r_pk IN ({selected})"
    return restricted, (*params, *selected_params)


def count(queryset: QuerySet, conditions: dict[str, Cond]) -> dict[str, int]:
    """Count every condition: one query (``fetch_columns``), then numpy.

    Returns
    -------
    dict
        Cell id -> exact count.
    """
    if not conditions:
        return {}
    layout = Layout.for_conditions(conditions.values())
    return count_columns(fetch_columns(queryset, layout), conditions)


def count_columns(columns: PatientColumns, conditions: dict[str, Cond]) -> dict[str, int]:
    """Count every condition on columns already fetched (no query)."""
    return {cell: int(np.count_nonzero(columns.mask(c))) for cell, c in conditions.items()}


def count_table(queryset: QuerySet, table: str) -> dict[str, int]:
    """All counts of one table, one query."""
    return count(queryset, cells(table))


def count_tables(queryset: QuerySet, tables: Iterable[str] = TABLES) -> dict[str, int]:
    """All counts of several tables in one query."""
    return count(queryset, all_cells(tables))


def all_cells(tables: Iterable[str] = TABLES) -> dict[str, Cond]:
    """The conditions of every cell of ``tables``, by cell id."""
    conditions: dict[str, Cond] = {}
    for table in tables:
        conditions.update(cells(table))
    return conditions


def flow(user=None, filters: Filters | None = None) -> dict[str, object]:
    """Counts of the flow chart (screened -> excluded -> enrolled -> analysed), two queries.

    The patients are those of the user and filters *including* the ones excluded after
    enrolment (the chart shows them); screening entries follow the site filter and the
    date range applied to the screening date.
    """
    filters = filters or Filters()
    enrolled = patients(user, filters, excluded=None)
    return flow_from(screening_counts(screening(user, filters)), enrolment_counts(enrolled))


def screening(user=None, filters: Filters | None = None) -> QuerySet[ScreeningEntry]:
    """The screening entries of the flow chart: the site filter and the date range
    applied to the screening date (the other filters describe enrolled patients)."""
    filters = filters or Filters()
    entries = (ScreeningEntry.objects.all() if user is None else access.screening_for(user)).using(
        analytics_db_alias()
    )
    if filters.site:
        entries = entries.filter(site__code=filters.site)
    if filters.date_from:
        entries = entries.filter(screening_date__gte=filters.date_from)
    if filters.date_to:
        entries = entries.filter(screening_date__lte=filters.date_to)
    return entries


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


# -- the columnar fetch ----------------------------------------------------------------------
#
# The study tables read every patient once: one query returns, per patient, the codes of
# the study variables (computed by the database from ``registry.derived`` and
# ``exposures``: the definitions stay there), the raw columns the cells compare and the
# continuous values. On PostgreSQL the rows come as CSV through ``COPY ... TO STDOUT``
# and pandas parses them in C: converting a million rows to Python tuples would cost
# more than the query itself (docs/performance.md).

# The variables' codes travel packed, 2 bits each, 15 to an integer: 3 numbers per
# patient instead of 43, so the database writes and pandas parses far less text. 15
# keeps the largest word (2 * 4**14 + ...) within a 32-bit integer on every database.
FLAG_KEYS = ex.VARIABLE_KEYS
BITS_PER_FLAG = 2
FLAGS_PER_WORD = 15
TEXT_RAW_COLUMNS = ("circulation", *(f"site_{m}" for m in ex.OCCLUSION_PATHS))


class Seconds(Func):
    """A duration as seconds (float), as the database computes it."""

    output_field = FloatField()

    def as_postgresql(self, compiler, connection_, **extra):
        # date_part, not EXTRACT: since PostgreSQL 14 EXTRACT computes in numeric,
        # 1.2 s of the study tables' read at 1,000,000 patients (docs/performance.md);
        # date_part gives the same seconds as a double.
        template = "date_part('epoch', %(expressions)s)"
        return self.as_sql(compiler, connection_, template=template, **extra)

    def as_sqlite(self, compiler, connection_, **extra):
        # Django's SQLite backend gives a difference of datetimes in microseconds.
        return self.as_sql(compiler, connection_, template="(%(expressions)s) / 1e6", **extra)


def _packed_words(keys: tuple[str, ...]) -> dict[str, object]:
    expressions = ex.variable_expressions()
    words = {}
    for start in range(0, len(keys), FLAGS_PER_WORD):
        terms = [
            Coalesce(_as_int(expressions[key]), Value(UNRECORDED)) * (1 << (BITS_PER_FLAG * i))
            for i, key in enumerate(keys[start : start + FLAGS_PER_WORD])
        ]
        words[f"w_{start // FLAGS_PER_WORD}"] = functools.reduce(operator.add, terms)
    return words


def _continuous_annotations() -> dict[str, object]:
    spans = intervals()
    return {
        "c_age": F("age_years"),
        "c_nihss_admission": F("admission__nihss_admission"),
        "c_onset_to_door_hours": Seconds(spans["onset_to_door"]) / 3600.0,
        "c_procedure_minutes": Seconds(spans["procedure_duration"]) / 60.0,
    }


@dataclass(frozen=True)
class Layout:
    """The columns one read fetches: variables (packed), raw codes, the continuous
    values and (``enrolment``) the flow chart's facts. The study tables read
    everything; a few cells (the figures, one table) only what their conditions use."""

    flags: tuple[str, ...] = tuple(FLAG_KEYS)
    raw: tuple[str, ...] = tuple(RAW_COLUMNS)
    continuous: bool = True
    enrolment: bool = False

    @classmethod
    def for_conditions(cls, conditions: Iterable[Cond]) -> Layout:
        inputs = set().union(*(c.inputs for c in conditions))
        flags = tuple(k for k in FLAG_KEYS if ("flag", k) in inputs)
        raw = tuple(n for n in RAW_COLUMNS if ("raw", n) in inputs)
        if not flags and not raw:  # e.g. only ALWAYS: one column to count the rows by
            raw = (next(iter(RAW_COLUMNS)),)
        return cls(flags=flags, raw=raw, continuous=False)

    def annotations(self) -> dict[str, object]:
        return {
            **_packed_words(self.flags),
            **{f"r_{name}": F(RAW_COLUMNS[name]) for name in self.raw},
            **(_continuous_annotations() if self.continuous else {}),
            **(enrolment_annotations() if self.enrolment else {}),
        }

    @property
    def names(self) -> list[str]:
        words = -(-len(self.flags) // FLAGS_PER_WORD)
        return [
            *(f"w_{i}" for i in range(words)),
            *(f"r_{name}" for name in self.raw),
            *((f"c_{key}" for key in ex.CONTINUOUS) if self.continuous else ()),
            *(("e_exclusion", "e_screened") if self.enrolment else ()),
        ]


FULL = Layout()
ANALYSIS = Layout(enrolment=True)


@dataclass
class PatientColumns:
    """One array per column, one element per patient (the order is the database's).

    ``flags``: variable -> uint8 codes (``FALSE``, ``TRUE``, ``UNRECORDED``); ``raw``:
    the raw columns (numbers as float with NaN, codes as ``pandas.Categorical``);
    ``continuous``: float with NaN. ``mask`` remembers each condition's mask, so a
    condition shared by many cells is evaluated once.
    """

    n: int
    flags: dict[str, np.ndarray]
    raw: dict[str, object]
    continuous: dict[str, np.ndarray]
    _masks: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    def mask(self, condition: Cond) -> np.ndarray:
        if condition.key not in self._masks:
            self._masks[condition.key] = np.asarray(condition.test(self), dtype=bool)
        return self._masks[condition.key]

    def raw_equals(self, name: str, value) -> np.ndarray:
        column = self.raw[name]
        if isinstance(column, pd.Categorical):
            code = column.categories.get_indexer([value])[0]
            return column.codes == code if code >= 0 else np.zeros(self.n, dtype=bool)
        return column == value

    def raw_blank(self, name: str) -> np.ndarray:
        column = self.raw[name]
        return column.codes == -1 if isinstance(column, pd.Categorical) else np.isnan(column)

    def binary(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Variables as 1.0 / 0.0 / NaN (not recorded), e.g. a regression's design."""
        return {
            key: np.where(self.flags[key] == UNRECORDED, np.nan, self.flags[key]) for key in keys
        }


def _frame_dtypes(names: list[str]) -> dict[str, str]:
    text = {*(f"r_{name}" for name in TEXT_RAW_COLUMNS), "e_exclusion"}
    whole = {"e_screened"}
    return {
        name: "int64"
        if name.startswith("w_") or name in whole
        else "category"
        if name in text
        else "float64"
        for name in names
    }


def _copy_out(cursor, copy_sql: str, params: tuple, setup: str = "") -> bytes | bytearray:
    """Every row of ``COPY (...) TO STDOUT``, read with libpq's PQgetCopyData.

    psycopg's ``Copy`` iterator pays a Python generator round trip for each row:
    2.4 s of 8.9 s at 1,000,000 patients. The loop below uses psycopg's
    documented libpq wrapper (``psycopg.pq``) and reads the same bytes in 6.5 s.
    It appends each row to one ``bytearray``: keeping a million small ``bytes``
    alive for a final ``join`` cost 1.3-1.6 s of CPU at 1,000,000 patients, against
    0.5 s when each row's buffer is freed and reused at once (the client's CPU
    competes with the server processes for the same cores).
    A cursor that binds on the server (no ``mogrify``) uses the iterator.

    ``setup`` (e.g. a ``SET LOCAL``) is sent in the same simple query as the COPY:
    both run in one transaction (the query's own, or the caller's if one is open),
    so a ``SET LOCAL`` ends with it, without a query of its own.
    """
    import psycopg  # only on PostgreSQL
    from psycopg import pq

    if not hasattr(cursor, "mogrify"):
        with cursor.connection.transaction():  # a SET LOCAL needs a transaction
            if setup:
                cursor.execute(setup)
            with cursor.copy(copy_sql, params) as copy:
                return b"".join(copy)
    copy_sql = cursor.mogrify(copy_sql, params)
    query = (f"{setup}; {copy_sql}" if setup else copy_sql).encode(cursor.connection.info.encoding)
    data, errors = bytearray(), []
    with cursor.connection.lock:
        pgconn = cursor.connection.pgconn
        pgconn.send_query(query)
        while True:
            while pgconn.is_busy():
                _wait_for_server(pgconn)
            if (result := pgconn.get_result()) is None:
                break
            if result.status == pq.ExecStatus.COPY_OUT:
                while (row := pgconn.get_copy_data(1))[0] >= 0:  # -1: the COPY has ended
                    if row[0]:
                        data += row[1]
                    else:  # nothing buffered yet
                        _wait_for_server(pgconn)
            elif result.status != pq.ExecStatus.COMMAND_OK:
                errors.append(result.error_message)
    if errors:
        raise psycopg.DatabaseError(b"; ".join(e or b"COPY failed" for e in errors).decode())
    return data


def _wait_for_server(pgconn) -> None:
    """Wait until the server has sent more, without holding the GIL.

    libpq's blocking calls wait while holding it: with two connections reading in two
    threads (``_read_split``), each thread then waited on the other's server, and the
    second connection took 0.4 s to open at 100,000 patients instead of 7 ms. The
    non-blocking calls return at once; ``select`` lets the other thread run.
    """
    select.select([pgconn.socket], [], [])
    pgconn.consume_input()


def _read_postgresql(connection_, sql: str, params: tuple, names: list[str]) -> pd.DataFrame:
    copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
    workers = settings.ANALYTICS_PARALLEL_WORKERS  # None: the server's own setting
    setup = "" if workers is None else f"SET LOCAL max_parallel_workers_per_gather = {workers:d}"
    with connection_.cursor() as cursor:
        # COPY bypasses the cursor wrapper: log it like any query (tests count them).
        logged_sql = f"{setup}; {copy_sql}" if setup else copy_sql
        logged = (
            cursor.debug_sql(logged_sql, params) if hasattr(cursor, "debug_sql") else nullcontext()
        )
        with connection_.wrap_database_errors, logged:
            data = _copy_out(cursor.cursor, copy_sql, params, setup)
    if not data:
        return pd.DataFrame({name: pd.Series(dtype=t) for name, t in _frame_dtypes(names).items()})
    return pd.read_csv(io.BytesIO(data), header=None, names=names, dtype=_frame_dtypes(names))


def _read_rows(connection_, sql: str, params: tuple, names: list[str]) -> pd.DataFrame:
    with connection_.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names)
    return frame.astype(_frame_dtypes(names))


_FETCH_SQL: dict[tuple, tuple[str, tuple]] = {}
_FETCH_SQL_KEPT = 64


def _fetch_sql(queryset: QuerySet, layout: Layout, *, ranged: bool = False) -> tuple[str, tuple]:
    """The fetch query of ``queryset``, compiled once per distinct restriction.

    Resolving ~60 expressions with the ORM takes ~50 ms, more than the whole query
    on a registry of a few thousand patients; the restriction (the user's sites and
    the filters) compiles in ~2 ms and identifies the query. ``ranged``: a template
    for one range of patient ids, to fill with ``_in_range``.
    """
    restriction = queryset.order_by().values("pk").query.sql_with_params()
    key = (queryset.db, layout, ranged, *restriction)
    if key not in _FETCH_SQL:
        if len(_FETCH_SQL) >= _FETCH_SQL_KEPT:
            _FETCH_SQL.clear()
        names = layout.names
        rows = queryset.order_by().annotate(**layout.annotations())
        if ranged:
            rows = rows.annotate(r_range_pk=F("pk"))
        sql, params = rows.values_list(
            *names, *(["r_range_pk"] if ranged else [])
        ).query.sql_with_params()
        if ranged:
            sql = _range_template(sql, names)
        _FETCH_SQL[key] = (sql, tuple(params))
    return _FETCH_SQL[key]


_FROM, _TO = "__range_from__", "__range_to__"


def _range_template(sql: str, names: list[str]) -> str:
    """The per-patient query restricted to ``_FROM <= patient id < _TO``.

    The range restricts the patients and, inside each join's ON clause, the joined
    table's ``patient_id`` (every join of the read is on it): PostgreSQL then reads
    only that range of each section instead of hashing all of it for every range
    (~0.5 s instead of 0.97 s per half at 100,000 patients). In the ON clause it
    changes no row of a LEFT JOIN: a patient's sections carry the patient's id.
    """
    patient_id = f"{_column(Patient._meta.db_table)}.{_column(Patient._meta.pk.column)}"
    join = re.compile(rf'ON \({re.escape(patient_id)} = ("\w+")\."patient_id"\)')
    sql = join.sub(
        rf'ON ({patient_id} = \1."patient_id" AND \1."patient_id" >= {_FROM}'
        rf' AND \1."patient_id" < {_TO})',
        sql,
    )
    columns = ", ".join(_column(name) for name in names)
    return f"SELECT {columns} FROM ({sql}) part WHERE r_range_pk >= {_FROM} AND r_range_pk < {_TO}"


def _in_range(template: str, bounds: tuple[int, int]) -> str:
    """``template`` for the ids ``bounds[0] <= id < bounds[1]`` (whole numbers, written
    into the SQL: the template's parameters stay as they are)."""
    low, high = (int(b) for b in bounds)
    return template.replace(_FROM, str(low)).replace(_TO, str(high))


def fetch_columns(queryset: QuerySet, layout: Layout = FULL) -> PatientColumns:
    """The per-patient columns of ``layout`` (default: every column the study tables
    need) for ``queryset``: ONE query."""
    return _columns_from(_read_frame(queryset, layout), layout)


def fetch_analysis(
    user=None, filters: Filters | None = None
) -> tuple[PatientColumns, dict[str, int]]:
    """The analysis set's columns and the flow chart's enrolment counts: ONE query.

    Reads every enrolled patient of ``user`` and ``filters``, those excluded after
    enrolment included, with ``analytics.flow.enrolment_annotations``; counts them as
    ``analytics.flow.enrolment_counts`` does in SQL (the same keys and rules, tested), then
    leaves the excluded out: the columns are those of
    ``fetch_columns(patients(user, filters))`` (tested), without a second scan.
    """
    enrolled = patients(user, filters, excluded=None)
    frame = _read_frame(enrolled, ANALYSIS)
    reason = frame["e_exclusion"]
    excluded = reason.notna().to_numpy()
    month3 = frame["r_mrs_month3"].notna().to_numpy()  # RAW_COLUMNS: followup__mrs_3m
    counts = {
        "enrolled": len(frame),
        "from_screening": int(frame["e_screened"].sum()),
        "excluded": int(excluded.sum()),
        "analysed": int(np.count_nonzero(~excluded & month3)),
        **{
            f"after_{code}": int(np.count_nonzero(reason == code))
            for code in PatientExclusionReason.values
        },
    }
    return _columns_from(frame[~excluded], ANALYSIS), counts


def _read_frame(queryset: QuerySet, layout: Layout) -> pd.DataFrame:
    names = layout.names
    if queryset.query.is_empty():  # e.g. no access at all: nothing to ask the database
        return pd.DataFrame({n: pd.Series(dtype=t) for n, t in _frame_dtypes(names).items()})
    connection_ = connections[queryset.db]
    if connection_.vendor != "postgresql":
        return _read_rows(connection_, *_fetch_sql(queryset, layout), names)
    if settings.ANALYTICS_READ_CONNECTIONS > 1 and not connection_.in_atomic_block:
        return _read_split(queryset, layout)
    return _read_one(queryset, layout)


def _read_one(queryset: QuerySet, layout: Layout) -> pd.DataFrame:
    """The whole read on PostgreSQL with the queryset's own connection."""
    connection_ = connections[queryset.db]
    return _read_postgresql(connection_, *_fetch_sql(queryset, layout), layout.names)


# -- reading with several connections ---------------------------------------------------------
#
# On PostgreSQL one connection is one server process: the read of 1,000,000 patients keeps
# one core busy evaluating and formatting rows while the other waits. Several connections
# each read a range of patient ids, in threads, on ONE exported snapshot, so that together
# they see exactly the data a single read would (pg_export_snapshot / SET TRANSACTION
# SNAPSHOT, as pg_dump --jobs does). Inside a caller's transaction (tests, an atomic
# request) the read stays on the caller's connection: other connections cannot see its
# uncommitted rows.

_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")


class _SnapshotRefused(Exception):
    """The server would not export a snapshot: the read falls back to one connection."""


def _read_split(queryset: QuerySet, layout: Layout) -> pd.DataFrame:
    """``_read_frame`` on several connections (``settings.ANALYTICS_READ_CONNECTIONS``).

    A server that refuses to export a snapshot (an old standby, a pooler that forbids
    it) gets the same read on one connection, and a warning in the log.
    """
    try:
        return _read_parts(queryset, layout)
    except _SnapshotRefused as refused:
        logger.warning("study tables read on one connection: %s", refused.__cause__)
        return _read_one(queryset, layout)


def _export_snapshot(connection_) -> tuple[str, int | None, int | None]:
    """In a new transaction: its snapshot's id, the lowest and the highest patient id."""
    table = connection_.ops.quote_name(Patient._meta.db_table)
    with connection_.cursor() as cursor:
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(_EXPORT_SQL.format(table=table))
        except DatabaseError as error:  # the transaction is aborted: start again outside
            raise _SnapshotRefused from error
        return cursor.fetchone()


_EXPORT_SQL = "SELECT pg_export_snapshot(), MIN(id), MAX(id) FROM {table}"


def _read_parts(queryset: QuerySet, layout: Layout) -> pd.DataFrame:
    alias, connection_, names = queryset.db, connections[queryset.db], layout.names
    with transaction.atomic(using=alias):
        snapshot, low, high = _export_snapshot(connection_)
        bounds = _id_ranges(low, high, settings.ANALYTICS_READ_CONNECTIONS)
        if len(bounds) == 1:
            return _read_one(queryset, layout)
        template, params = _fetch_sql(queryset, layout, ranged=True)
        with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
            others = [
                pool.submit(
                    _read_in_snapshot, alias, snapshot, _in_range(template, b), params, names
                )
                for b in bounds[1:]
            ]
            first = _read_postgresql(connection_, _in_range(template, bounds[0]), params, names)
            frames = [first, *(future.result() for future in others)]
    return _concat(frames)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts as one frame; a text column stays categorical (pandas would make it
    ``object`` when the parts saw different codes) with the codes of all parts."""
    for name, dtype in frames[0].dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            codes = sorted(set().union(*(f[name].cat.categories for f in frames)))
            for f in frames:
                f[name] = f[name].cat.set_categories(codes)
    return pd.concat(frames, ignore_index=True)


def _id_ranges(low: int | None, high: int | None, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges ``[from, to)`` of equal width covering ``low..high``; one range
    covering every id when the span is under ``settings.ANALYTICS_SPLIT_MIN_PATIENTS``
    (a second connection costs more than it saves on a small registry)."""
    if low is None or high - low + 1 < max(settings.ANALYTICS_SPLIT_MIN_PATIENTS, parts):
        return [(low or 0, (high or 0) + 1)]
    edges = [low + (high - low + 1) * i // parts for i in range(parts)] + [high + 1]
    return list(itertools.pairwise(edges))


def _read_in_snapshot(alias: str, snapshot: str, sql: str, params: tuple, names: list[str]):
    """One range, in a worker thread: its own connection (Django's connections are per
    thread), closed afterwards, in a transaction on the exporter's snapshot."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):  # it is pasted into the SQL: check its form
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    connection_ = connections[alias]
    try:
        with transaction.atomic(using=alias), connection_.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return _read_postgresql(connection_, sql, params, names)
    finally:
        connection_.close()


def _columns_from(frame: pd.DataFrame, layout: Layout) -> PatientColumns:
    flags = {}
    for index, key in enumerate(layout.flags):
        word = frame[f"w_{index // FLAGS_PER_WORD}"].to_numpy(dtype=np.int64)
        shift = BITS_PER_FLAG * (index % FLAGS_PER_WORD)
        flags[key] = ((word >> shift) & 0b11).astype(np.uint8)
    raw = {}
    for name in layout.raw:
        column = frame[f"r_{name}"]
        raw[name] = column.array if name in TEXT_RAW_COLUMNS else column.to_numpy(dtype=float)
    continuous = {
        key: frame[f"c_{key}"].to_numpy(dtype=float) for key in ex.CONTINUOUS if layout.continuous
    }
    return PatientColumns(n=len(frame), flags=flags, raw=raw, continuous=continuous)
