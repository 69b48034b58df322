"""What the study tables count: one condition per cell, and the count of each.

A count is identified by a *cell id* such as ``"table1:age_70_plus:exposed_events"``.
Its condition (a ``Cond``) says what the cell counts twice over, from the same
constructors: as SQL on the per-patient query (``datasets.drilldown`` lists the
patients behind a count with it) and as a numpy mask on the per-patient columns
(``count_columns`` counts with it). ``tests/test_datasets.py`` checks that both agree
on every cell.

Nothing here reads the registry: ``analytics.datasets`` fetches the columns the
conditions test (``datasets.Layout.for_conditions`` reads ``Cond.inputs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from django.db import connection

from registry.derived import DEAD_MRS

from . import exposures as ex

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import numpy as np

TABLES = ("baseline", "table1", "table2", "table3", "table4", "outcomes", "occlusion_sites")
CELL_NAMES_2X2 = ("exposed_n", "exposed_events", "unexposed_n", "unexposed_events", "missing")

# A variable's value in the per-patient columns: 0 = False, 1 = True, 2 = not recorded.
FALSE, TRUE, UNRECORDED = 0, 1, 2

# Plain columns the cells compare with a value: name -> database path.
RAW_COLUMNS = {
    "circulation": "imaging__circulation",
    **{f"mrs_{tp}": path for tp, (path, _label) in ex.MRS_TIMEPOINTS.items()},
    **{f"site_{method}": path for method, path in ex.OCCLUSION_PATHS.items()},
}


class Columns(Protocol):
    """What a condition's ``test`` reads (``datasets.PatientColumns``): one array per
    column, one element per patient."""

    n: int
    flags: dict[str, np.ndarray]
    raw: dict[str, object]

    def mask(self, condition: Cond, *, keep: bool = True) -> np.ndarray: ...

    def forget_masks(self) -> None: ...

    def raw_equals(self, name: str, value) -> np.ndarray: ...

    def raw_blank(self, name: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Cond:
    """A condition on the per-patient columns: SQL (``%s`` placeholders + params) and
    the same test as a numpy mask (``test(columns) -> bool array``)."""

    sql: str
    params: tuple = ()
    test: Callable[[Columns], np.ndarray] | None = field(default=None, compare=False, repr=False)
    # The columns ``test`` reads: ("flag", variable) and ("raw", name) pairs, so that a
    # read for a few cells fetches only those (``datasets.Layout.for_conditions``).
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


def _everyone(c) -> np.ndarray:
    import numpy as np

    return np.ones(c.n, dtype=bool)


ALWAYS = Cond("1 = 1", (), _everyone)


def alias(key: str) -> str:
    """Column of a variable in the per-patient query (prefixed: never clashes with a
    model field)."""
    return f"v_{key}"


def _column(name: str) -> str:
    return connection.ops.quote_name(name)


# -- conditions ------------------------------------------------------------------------------


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


# -- the cells of each table -----------------------------------------------------------------


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


def all_cells(tables: Iterable[str] = TABLES) -> dict[str, Cond]:
    """The conditions of every cell of ``tables``, by cell id."""
    conditions: dict[str, Cond] = {}
    for table in tables:
        conditions.update(cells(table))
    return conditions


def cell_condition(cell_id: str) -> Cond:
    """The condition of one cell (KeyError when there is no such cell)."""
    table = cell_id.split(":", 1)[0]
    if table not in CELL_BUILDERS:
        raise KeyError(cell_id)
    return cells(table)[cell_id]


# -- counting --------------------------------------------------------------------------------


def count_columns(columns: Columns, conditions: dict[str, Cond]) -> dict[str, int]:
    """Count every condition on columns already fetched (no query).

    Returns
    -------
    dict
        Cell id -> exact count.
    """
    import numpy as np

    counts = {
        cell: int(np.count_nonzero(columns.mask(c, keep=False))) for cell, c in conditions.items()
    }
    columns.forget_masks()  # a byte per patient each: the analyses after the counts need few
    return counts
