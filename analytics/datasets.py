"""The only module of ``analytics`` that reads the registry.

Everything the study tables need comes from ONE query, whatever the number of
patients (``fetch_columns``, ``fetch_analysis``): one row per patient holding the
study variables as the database computes them from the registry's derived
expressions, the raw columns the cells compare and the continuous values (ages for
the median...). On PostgreSQL the rows travel by COPY, and on a large registry on
several connections sharing one snapshot (``analytics.pgread``). What each cell
counts is ``analytics.cells``; the counts are taken with numpy over the columns, the
regression's design (``analytics.regression``) from them too. No model instance is
loaded.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from registry import access

try:  # a read replica for the analytics when ANALYTICS_DATABASE_URL is set
    from config.db_router import analytics_db_alias
except ImportError:  # pragma: no cover - a registry without the replica router

    def analytics_db_alias() -> str:
        return DEFAULT_DB_ALIAS


from registry import freezes
from registry.derived import MRS_3M_FLAGS, door_dates_between, intervals
from registry.models import (
    MrsInterview,
    Patient,
    PatientExclusion,
    PatientExclusionReason,
    ScreeningEntry,
)
from registry.rules import FOLLOWUP_DAYS
from registry.workflow.services import screening_counts

from . import exposures as ex
from . import pgread
from .cells import (
    RAW_COLUMNS,
    TABLES,
    UNRECORDED,
    Cond,
    alias,
    all_cells,
    cell_condition,
    cells,
    count_columns,
)
from .flow import ENROLMENT_COLUMNS, enrolment_annotations, enrolment_counts, flow_from

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The raw column of the 3-month mRS (cells.RAW_COLUMNS).
MRS_3M_RAW = "mrs_month3"


@dataclass(frozen=True)
class Filters:
    """What the investigator asked for: site code, door-date range, circulation, and
    how a 3-month mRS assessed outside the follow-up window counts
    (``followup_window``: ``"as_recorded"``, as the study did, or ``"strict"``: as
    missing, for a sensitivity analysis)."""

    site: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    circulation: str | None = None
    followup_window: str = "as_recorded"

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
        if values.get("followup_window") == WINDOW_AS_RECORDED:
            del values["followup_window"]  # the default: not spelt out in links
        return {key: str(value) for key, value in values.items()}

    @property
    def strict_window(self) -> bool:
        return self.followup_window == WINDOW_STRICT


WINDOW_AS_RECORDED, WINDOW_STRICT = "as_recorded", "strict"
FOLLOWUP_WINDOW_CHOICES = (WINDOW_AS_RECORDED, WINDOW_STRICT)


# An exclusion for one of these reasons takes a patient out of the analyses that need the
# 3-month mRS only (their mRS counts as not recorded); an exclusion for any other reason
# takes the patient out of every analysis (docs/statistics.md).
MRS_3M_ONLY_EXCLUSIONS = (PatientExclusionReason.LOST_TO_FOLLOWUP.value,)


def patients(
    user=None, filters: Filters | None = None, *, excluded: bool | None = False
) -> QuerySet[Patient]:
    """The analysis set: patients the user may read (all when ``user`` is None), filtered.

    Patients excluded from every analysis after enrolment (an exclusion in force for a
    reason other than ``MRS_3M_ONLY_EXCLUSIONS``, e.g. consent withdrawn) are left out;
    ``excluded=True`` gives only those instead, and ``excluded=None`` both. A patient
    lost to follow-up stays: the analyses that need the 3-month mRS leave them out
    (``fetch_analysis``, ``fetch_cells``).

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
    # The study tables scan every patient: on a busy registry they read a replica.
    queryset = _readable(Patient, user, access.patients_for)
    # EXISTS rather than a join on the exclusion: the planner then estimates the
    # patients left correctly and sizes the study tables' hash joins for them.
    excluded_now = Exists(
        PatientExclusion.objects.filter(patient=OuterRef("pk"), active=True).exclude(
            reason__in=MRS_3M_ONLY_EXCLUSIONS
        )
    )
    if excluded is True:
        queryset = queryset.filter(excluded_now)
    elif excluded is False:
        queryset = queryset.filter(~excluded_now)
    if filters.site:
        queryset = queryset.filter(site__code=filters.site)
    queryset = door_dates_between(queryset, filters.date_from, filters.date_to)
    if filters.circulation:
        queryset = queryset.filter(imaging__circulation=filters.circulation)
    return queryset


# -- where the rows come from -----------------------------------------------------------------

# The data freeze being read in this context (``source``), or None: the live registry.
_FREEZE: ContextVar[tuple[object, str] | None] = ContextVar("analytics_freeze", default=None)


@contextmanager
def source(freeze=None) -> Iterator[None]:
    """Read the rows of ``freeze`` (a ``DataFreeze``, verified: ``FreezeTampered``)
    instead of the live registry inside this block; None reads the registry.

    The one place that decides where the analytics' rows come from: the study tables,
    quality indicators, flow chart, figures and Word report all read through
    ``patients`` / ``screening`` here. The user's access is decided for the freeze as a
    whole (``registry.access.freezes_for``): inside it every frozen patient is read.
    """
    if freeze is None:
        yield
        return
    token = _FREEZE.set((freeze, freezes.freeze_database(freeze=freeze)))
    try:
        yield
    finally:
        _FREEZE.reset(token)


def current_freeze():
    """The ``DataFreeze`` read in this context (``source``), or None for the registry."""
    frozen = _FREEZE.get()
    return frozen[0] if frozen else None


def freeze_contract(freeze) -> dict[str, object]:
    """The ``freeze`` object a result computed from ``freeze`` carries: name, time, hash."""
    return {
        "name": freeze.name,
        "created_at": timezone.localtime(freeze.created_at).isoformat(timespec="seconds"),
        "sha256": freeze.sha256,
        "n_patients": freeze.n_patients,
    }


def _read_alias() -> str:
    frozen = _FREEZE.get()
    return frozen[1] if frozen else analytics_db_alias()


def _readable(model, user, scoped):
    """``model``'s rows the user may read, on the database read (``source``)."""
    if _FREEZE.get() is not None or user is None:
        return model.objects.using(_read_alias()).all()
    return scoped(user).using(_read_alias())


# -- queries ---------------------------------------------------------------------------------


def compiled(queryset: QuerySet) -> tuple[str, tuple]:
    """The SQL of ``queryset`` for the database it reads (``Query.sql_with_params``
    compiles for the default database, whose dialect a freeze's may not share)."""
    return queryset.query.get_compiler(queryset.db).as_sql()


def matches_nothing(queryset: QuerySet) -> bool:
    """True when ``queryset`` can match no row whatever the data: ``none()``, or a
    restriction such as ``site_id__in=[]`` (a user without a site), which Django refuses
    to compile (``EmptyResultSet``) instead of sending a query that returns nothing."""
    if queryset.query.is_empty():
        return True
    try:
        queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:
        return True
    return False


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
        sql, params = compiled(inner)
        _PER_PATIENT_SQL[key] = (sql, tuple(params))
    return _PER_PATIENT_SQL[key]


def per_patient_sql(queryset: QuerySet) -> tuple[str, tuple]:
    """The per-patient rows (SQL) restricted to ``queryset``: what ``Cond.sql`` reads."""
    sql, params = _all_patients_sql(queryset.db)
    selected, selected_params = compiled(queryset.order_by().values("pk"))
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


def count_table(queryset: QuerySet, table: str) -> dict[str, int]:
    """All counts of one table, one query."""
    return count(queryset, cells(table))


def count_tables(queryset: QuerySet, tables: Iterable[str] = TABLES) -> dict[str, int]:
    """All counts of several tables in one query."""
    return count(queryset, all_cells(tables))


def flow(user=None, filters: Filters | None = None) -> dict[str, object]:
    """Counts of the flow chart (screened -> excluded -> enrolled -> analysed), two queries.

    The patients are those of the user and filters *including* the ones excluded after
    enrolment (the chart shows them); screening entries follow the site filter and the
    date range applied to the screening date.
    """
    filters = filters or Filters()
    enrolled = patients(user, filters, excluded=None)
    return flow_from(screening_counts(screening(user, filters)), enrolment_counts(enrolled))


def data_as_of(user=None, filters: Filters | None = None) -> dt.datetime | None:
    """When the data the tables read last changed: the latest creation of a patient or
    save of a section among the patients of ``user`` and ``filters`` (those excluded
    after enrolment included), one query; None when there is no patient."""
    from registry.models import SECTIONS_BY_KEY

    queryset = patients(user, filters, excluded=None)
    if matches_nothing(queryset):
        return None
    latest = queryset.aggregate(
        created=Max("created_at"),
        **{key: Max(f"{key}__updated_at") for key in SECTIONS_BY_KEY},
    )
    times = [value for value in latest.values() if value is not None]
    return max(times) if times else None


def screening(user=None, filters: Filters | None = None) -> QuerySet[ScreeningEntry]:
    """The screening entries of the flow chart: the site filter and the date range
    applied to the screening date (the other filters describe enrolled patients)."""
    filters = filters or Filters()
    entries = _readable(ScreeningEntry, user, access.screening_for)
    if filters.site:
        entries = entries.filter(site__code=filters.site)
    if filters.date_from:
        entries = entries.filter(screening_date__gte=filters.date_from)
    if filters.date_to:
        entries = entries.filter(screening_date__lte=filters.date_to)
    return entries


def mrs_interviews_by_language(user=None, filters: Filters | None = None) -> dict[str, int]:
    """The mRS interviews of the analysis set's patients, counted by the language the
    questions were read in (a language code -> a count; languages never used are absent).

    Parameters
    ----------
    user : User or None
        Counts only the patients this user may read; None = all.
    filters : Filters
        The filters of the study tables.
    """
    interviews = MrsInterview.objects.using(_read_alias()).filter(
        patient__in=patients(user, filters)
    )
    rows = interviews.values_list("language").annotate(n=Count("pk")).order_by("language")
    return dict(rows)


def drilldown(queryset: QuerySet, cell_id: str) -> QuerySet:
    """The patients counted in ``cell_id`` (KeyError for an unknown cell).

    The same condition as the count, on the same per-patient query, so the list and
    the number agree. Returns a ``values()`` queryset, never model instances.
    """
    condition = cell_condition(cell_id)
    if matches_nothing(queryset):
        return queryset.values("pk", "study_id")
    inner, params = per_patient_sql(queryset)
    pks = RawSQL(
        f"SELECT r_pk FROM ({inner}) per_patient WHERE {condition.sql}",
        (*params, *condition.params),
    )
    return patient_rows(queryset.filter(pk__in=pks))


# What a list of patients behind a count shows (templates/analytics/_patient_rows.html).
PATIENT_ROW_FIELDS = (
    "pk",
    "study_id",
    "site__code",
    "age_years",
    "sex",
    "imaging__circulation",
    "admission__door_time",
    "followup__mrs_3m",
)


def patient_rows(queryset: QuerySet) -> QuerySet:
    """The rows of a drill-down list of ``queryset``'s patients, by study ID."""
    return queryset.order_by("study_id").values(*PATIENT_ROW_FIELDS)


# -- the columnar fetch ----------------------------------------------------------------------
#
# The study tables read every patient once: one query returns, per patient, the codes of
# the study variables (computed by the database from ``registry.derived`` and
# ``exposures``: the definitions stay there), the raw columns the cells compare and the
# continuous values. On PostgreSQL the rows come through COPY (``analytics.pgread``).

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
        # date_part, not EXTRACT: since PostgreSQL 14 EXTRACT computes in numeric, a
        # large part of the study tables' read on a large registry (docs/performance.md);
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
        "c_dwi_aspects": F("imaging__dwi_aspects"),
        "c_pc_aspects": F("imaging__pc_aspects"),
    }


# The continuous columns read: the baseline table's values and the regression's other
# continuous covariates (``exposures.REGRESSION_CONTINUOUS``).
CONTINUOUS_COLUMNS = (*ex.CONTINUOUS, "dwi_aspects", "pc_aspects")


@dataclass(frozen=True)
class Layout:
    """The columns one read fetches: variables (packed), raw codes, the continuous
    values and (``enrolment``) the flow chart's facts. The study tables read
    everything; a few cells (the figures, one table) only what their conditions use."""

    flags: tuple[str, ...] = tuple(FLAG_KEYS)
    raw: tuple[str, ...] = tuple(RAW_COLUMNS)
    continuous: bool = True
    enrolment: bool = False
    followup: bool = False  # the days from onset (door) to the 3-month follow-up

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
            **({"f_followup_days": _followup_days()} if self.followup else {}),
        }

    @property
    def names(self) -> list[str]:
        words = -(-len(self.flags) // FLAGS_PER_WORD)
        return [
            *(f"w_{i}" for i in range(words)),
            *(f"r_{name}" for name in self.raw),
            *((f"c_{key}" for key in CONTINUOUS_COLUMNS) if self.continuous else ()),
            *(ENROLMENT_COLUMNS if self.enrolment else ()),
            *(("f_followup_days",) if self.followup else ()),
        ]


def _followup_days() -> Seconds:
    """Days from the local date of onset (of the door without onset) to the follow-up,
    as ``registry.rules.followup_window`` counts them."""
    start = TruncDate(
        Coalesce(F("admission__onset_time"), F("admission__door_time")),
        tzinfo=timezone.get_default_timezone(),
    )
    span = ExpressionWrapper(F("followup__followup_date") - start, output_field=DurationField())
    return Seconds(span) / 86400.0


FULL = Layout()
ANALYSIS = Layout(enrolment=True, followup=True)


@dataclass
class PatientColumns:
    """One array per column, one element per patient (the order is the database's).

    ``flags``: variable -> uint8 codes (``cells.FALSE``, ``TRUE``, ``UNRECORDED``); ``raw``:
    the raw columns (numbers as float with NaN, codes as ``pandas.Categorical``);
    ``continuous``: float with NaN. ``mask`` remembers each condition's mask, so a
    condition shared by many cells is evaluated once.
    """

    n: int
    flags: dict[str, np.ndarray]
    raw: dict[str, object]
    continuous: dict[str, np.ndarray]
    # Days from onset (door) to the follow-up date, NaN when unknown (ANALYSIS only).
    followup_days: np.ndarray | None = None
    _masks: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)
    _binary: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def followup_in_window(self, window: int) -> np.ndarray:
        """True / False per patient, the follow-up date inside 90 ± ``window`` days
        (``registry.rules.followup_in_window``); False also when unknown."""
        import numpy as np

        days = self.followup_days
        return np.abs(days - FOLLOWUP_DAYS) <= window  # NaN compares False

    def without_mrs_3m(self, drop: np.ndarray) -> PatientColumns:
        """These columns with the 3-month mRS of the ``drop`` patients not recorded
        (the strict follow-up window's sensitivity analysis)."""
        import numpy as np

        flags = dict(self.flags)
        for key in MRS_3M_FLAGS:
            if key in flags:
                flags[key] = np.where(drop, UNRECORDED, flags[key]).astype(np.uint8)
        raw = dict(self.raw)
        if MRS_3M_RAW in raw:
            raw[MRS_3M_RAW] = np.where(drop, np.nan, raw[MRS_3M_RAW])
        return PatientColumns(self.n, flags, raw, self.continuous, self.followup_days)

    def mask(self, condition: Cond, *, keep: bool = True) -> np.ndarray:
        """True / False per patient: ``condition``, remembered unless ``keep`` is False.

        A cell counted once asks with ``keep=False``: its parts, which other cells
        share, are remembered, but not its own mask (one byte per patient: the several
        hundred cells of the study tables would outweigh every column read).
        """
        import numpy as np

        if condition.key in self._masks:
            return self._masks[condition.key]
        mask = np.asarray(condition.test(self), dtype=bool)
        if keep:
            self._masks[condition.key] = mask
        return mask

    def forget_masks(self) -> None:
        """Drop the masks remembered by ``mask``."""
        self._masks.clear()

    def raw_equals(self, name: str, value) -> np.ndarray:
        import numpy as np
        import pandas as pd

        column = self.raw[name]
        if isinstance(column, pd.Categorical):
            code = column.categories.get_indexer([value])[0]
            return column.codes == code if code >= 0 else np.zeros(self.n, dtype=bool)
        return column == value

    def raw_blank(self, name: str) -> np.ndarray:
        import numpy as np
        import pandas as pd

        column = self.raw[name]
        return column.codes == -1 if isinstance(column, pd.Categorical) else np.isnan(column)

    def covariates(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Regression variables: a yes/no variable as 1.0 / 0.0 / NaN, a continuous
        covariate (``exposures.REGRESSION_CONTINUOUS``) as its value or NaN."""
        import numpy as np

        values = {}
        for key in keys:
            if key in ex.REGRESSION_CONTINUOUS:
                column = ex.REGRESSION_CONTINUOUS_COLUMNS.get(key, key)
                values[key] = np.asarray(self.continuous[column], dtype=float)
            else:
                values.update(self.binary([key]))
        return values

    def binary(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Variables as 1.0 / 0.0 / NaN (not recorded), e.g. a regression's design.

        Each variable's array is made once and shared (the shift analysis asks for
        the same ones 50 times): callers do not write to it."""
        import numpy as np

        for key in keys:
            if key not in self._binary:
                flags = self.flags[key]
                self._binary[key] = np.where(flags == UNRECORDED, np.nan, flags)
        return {key: self._binary[key] for key in keys}


def _frame_dtypes(names: list[str]) -> dict[str, str]:
    text = {*(f"r_{name}" for name in TEXT_RAW_COLUMNS), "e_exclusion"}
    whole = {"e_screened", "e_analysed"}
    return {
        name: "int64"
        if name.startswith("w_") or name in whole
        else "category"
        if name in text
        else "float64"
        for name in names
    }


def _read_rows(connection_, sql: str, params: tuple, dtypes: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    with connection_.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=list(dtypes))
    return frame.astype(dtypes)


_FETCH_SQL: dict[tuple, tuple[str, tuple]] = {}
_FETCH_SQL_KEPT = 64


def _fetch_sql(queryset: QuerySet, layout: Layout, *, ranged: bool = False) -> tuple[str, tuple]:
    """The fetch query of ``queryset``, compiled once per distinct restriction.

    Resolving ~60 expressions with the ORM costs more than the whole query on a
    registry of a few thousand patients; the restriction (the user's sites and the
    filters) compiles far faster and identifies the query. ``ranged``: the template
    for one range of patient ids of a read on several connections
    (``pgread.range_template``).
    """
    restriction = compiled(queryset.order_by().values("pk"))
    key = (queryset.db, layout, ranged, *restriction)
    if key not in _FETCH_SQL:
        if len(_FETCH_SQL) >= _FETCH_SQL_KEPT:
            _FETCH_SQL.clear()
        names = layout.names
        rows = queryset.order_by().annotate(**layout.annotations())
        if ranged:
            rows = rows.annotate(r_range_pk=F("pk"))
        sql, params = compiled(rows.values_list(*names, *(["r_range_pk"] if ranged else [])))
        if ranged:
            sql = pgread.range_template(sql, names)
        _FETCH_SQL[key] = (sql, tuple(params))
    return _FETCH_SQL[key]


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
    import numpy as np

    enrolled = patients(user, filters, excluded=None)
    frame = _read_frame(enrolled, ANALYSIS)
    reason = frame["e_exclusion"]
    excluded = reason.notna().to_numpy()
    counts = {
        "enrolled": len(frame),
        "from_screening": int(frame["e_screened"].sum()),
        "excluded": int(excluded.sum()),
        "analysed": int(frame["e_analysed"].sum()),
        **{
            f"after_{code}": int(np.count_nonzero(reason == code))
            for code in PatientExclusionReason.values
        },
    }
    return _analysed(frame, ANALYSIS), counts


def fetch_cells(
    user=None, filters: Filters | None = None, tables: Iterable[str] = TABLES
) -> tuple[PatientColumns, dict[str, Cond]]:
    """The analysis set's columns that the cells of ``tables`` count, ONE query (the
    figures): the same patients and 3-month mRS as ``fetch_analysis``.

    Returns
    -------
    (PatientColumns, dict)
        The columns read (with the follow-up days under the strict window) and the
        cells of ``tables`` (cell id -> condition), for ``cells.count_columns``.
    """
    filters = filters or Filters()
    conditions = all_cells(tables)
    layout = Layout.for_conditions(conditions.values())
    layout = Layout(**{**asdict(layout), "enrolment": True, "followup": filters.strict_window})
    columns = _analysed(_read_frame(patients(user, filters, excluded=None), layout), layout)
    return columns, conditions


def _analysed(frame: pd.DataFrame, layout: Layout) -> PatientColumns:
    """The columns of the patients analysed: those excluded after enrolment left out,
    those lost to follow-up kept with their 3-month mRS as not recorded."""
    reason = frame["e_exclusion"]
    lost = reason.isin(MRS_3M_ONLY_EXCLUSIONS).to_numpy()
    keep = reason.isna().to_numpy() | lost
    columns = _columns_from(frame[keep], layout)
    return columns.without_mrs_3m(lost[keep]) if lost.any() else columns


def _read_frame(queryset: QuerySet, layout: Layout) -> pd.DataFrame:
    import pandas as pd

    dtypes = _frame_dtypes(layout.names)
    if matches_nothing(queryset):  # e.g. no access at all: nothing to ask the database
        return pd.DataFrame({name: pd.Series(dtype=t) for name, t in dtypes.items()})
    connection_ = connections[queryset.db]
    if connection_.vendor != "postgresql":
        return _read_rows(connection_, *_fetch_sql(queryset, layout), dtypes)
    return pgread.read(
        queryset.db,
        _fetch_sql(queryset, layout),
        dtypes,
        ranged=lambda: _fetch_sql(queryset, layout, ranged=True),
    )


def _columns_from(frame: pd.DataFrame, layout: Layout) -> PatientColumns:
    import numpy as np

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
        key: frame[f"c_{key}"].to_numpy(dtype=float)
        for key in CONTINUOUS_COLUMNS
        if layout.continuous
    }
    days = frame["f_followup_days"].to_numpy(dtype=float) if layout.followup else None
    return PatientColumns(
        n=len(frame), flags=flags, raw=raw, continuous=continuous, followup_days=days
    )
