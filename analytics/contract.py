"""The values of a study-table row, declared once: their source, contract key and sheet columns.

A Table I / III row is a ``stats.RiskComparison`` plus two values of the row itself
(``missing``, ``percent``). ``RISK_FIELDS`` says, for each value, which attribute of
the comparison it is, under which key the JSON contract
(``shared/spec/study-tables-json.md``) carries it and which columns the exported
sheets give it: ``tables.risk_row`` builds the contract's row from it,
``exports`` the sheet's columns. A new statistic is one more line here.

The diagnostic tables' measures (Tables II and IV) are named once here too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .formatting import format_nn_interval

VALUE = "value"
"""As it is, in the contract and in one sheet column of the same name."""
INTERVAL = "interval"
"""A CI: ``[low, high]`` in the contract; sheet columns ``<key>_low`` and ``<key>_high``."""
NN_INTERVAL = "nn_interval"
"""A ``stats.NNInterval``: its fields and ``text`` in the contract; the text on the sheet."""


@dataclass(frozen=True)
class RowField:
    """One value of a row.

    Parameters
    ----------
    key : str
        The contract's key (and the sheet column's name, or its prefix).
    attribute : str, optional
        The ``stats`` result's attribute holding it; default ``key``.
    shape : {VALUE, INTERVAL, NN_INTERVAL}
        How the contract and the sheet carry it.
    of_row : bool
        A value of the row itself, not of the result (``risk_row`` gives it).
    on_sheet : bool
        Whether the exported sheets carry it.
    sheet_before : str, optional
        The key of a field this one precedes on the sheets (otherwise the sheets follow
        the declaration, which is the contract's order).
    """

    key: str
    attribute: str | None = None
    shape: str = VALUE
    of_row: bool = False
    on_sheet: bool = True
    sheet_before: str | None = None

    def contract_value(self, result, row_values: dict[str, object]) -> object:
        """This field's value in the contract, from ``result`` or ``row_values``."""
        if self.of_row:
            return row_values[self.key]
        value = getattr(result, self.attribute or self.key)
        if value is None or self.shape == VALUE:
            return value
        if self.shape == INTERVAL:
            return [float(value[0]), float(value[1])]
        return {**dataclasses.asdict(value), "text": format_nn_interval(value)}

    def sheet_values(self, value) -> dict[str, object]:
        """This field's sheet columns, from its contract ``value``."""
        if self.shape == INTERVAL:
            low, high = (None, None) if value is None else value
            return {f"{self.key}_low": low, f"{self.key}_high": high}
        if self.shape == NN_INTERVAL:
            return {self.key: (value or {}).get("text")}
        return {self.key: value}


RISK_FIELDS = (
    RowField("n"),
    RowField("missing", of_row=True),
    RowField("exposed_n", "n1"),
    RowField("exposed_events", "a"),
    RowField("unexposed_n", "n0"),
    RowField("unexposed_events", "c"),
    RowField("percent", of_row=True),  # exposed_events / n * 100, as the paper prints
    RowField("risk_exposed", on_sheet=False),
    RowField("risk_unexposed", on_sheet=False),
    RowField("rr"),
    RowField("rr_ci", shape=INTERVAL),
    RowField("rd"),
    RowField("rd_ci", shape=INTERVAL),
    RowField("or", "odds_ratio"),
    RowField("or_ci", shape=INTERVAL),
    RowField("p"),
    RowField("p_method"),
    RowField("nnh"),
    RowField("nnt", sheet_before="nnh"),
    RowField("nn_unrounded"),
    RowField("nn_ci", shape=NN_INTERVAL),
    RowField("note"),
)
"""A Table I / III row (``stats.RiskComparison``), in the contract's order."""


def contract_row(fields: tuple[RowField, ...], result, row_values: dict) -> dict[str, object]:
    """The contract's values of ``fields``: from the ``stats`` ``result``, and from
    ``row_values`` for the row's own values."""
    return {field.key: field.contract_value(result, row_values) for field in fields}


def sheet_row(fields: tuple[RowField, ...], row: dict) -> dict[str, object]:
    """The sheet columns of ``fields`` from a contract ``row``, in the sheets' order."""
    return {
        heading: value
        for field in _sheet_order(fields)
        for heading, value in field.sheet_values(row[field.key]).items()
    }


def _sheet_order(fields: tuple[RowField, ...]) -> list[RowField]:
    ordered = [f for f in fields if f.on_sheet and not f.sheet_before]
    for moved in (f for f in fields if f.on_sheet and f.sheet_before):
        before = next(i for i, f in enumerate(ordered) if f.key == moved.sheet_before)
        ordered.insert(before, moved)
    return ordered


# Tables II and IV: the 2x2 counts and the measures of a ``stats.DiagnosticAccuracy``.
DIAGNOSTIC_CELLS = ("tp", "fp", "fn", "tn")
DIAGNOSTIC_PROPORTIONS = ("sensitivity", "specificity", "ppv", "npv")
DIAGNOSTIC_RATIOS = ("lr_positive", "lr_negative")
