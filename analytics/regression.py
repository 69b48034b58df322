"""The study's logistic regression fitted from the per-patient columns, and remembered.

Between the read (``datasets.PatientColumns.binary``: one array per variable) and the
statistics (``stats.logistic_regression``): a ``Design`` turns the columns into their
distinct rows and counts, ``fit`` fits those with the counts as frequency weights and
remembers the fit. No Django: plain arrays in, a ``stats.RegressionResult`` out.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from . import ordinal, stats

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import numpy as np


class Design:
    """A regression's data as its distinct rows and their counts: hashable by
    content, so that ``fit`` can remember its fit, and small enough to remember.

    When every variable is binary (1 / 0 / missing) a row is a base-3 number and the
    rows are rebuilt from the counts in that number's order; with a continuous
    covariate the distinct rows are sorted by value. The database returns patients in
    no fixed order; the same data must give the same fit and digits.

    Parameters
    ----------
    outcome : str
        The outcome's key in ``columns``.
    covariates : tuple of str
        The covariates' keys, in the order of the fit's terms.
    columns : dict
        Key -> one value per patient: 1 / 0 / NaN (or True / False / None); any
        number or NaN for the keys in ``continuous``.
    continuous : tuple of str
        The covariates entered linearly with their own values.

    Raises
    ------
    ValueError
        When a value of a yes/no variable is neither 1, 0 nor missing.
    """

    def __init__(self, outcome: str, covariates: tuple[str, ...], columns: dict, *, continuous=()):
        import numpy as np

        self.names = (outcome, *covariates)
        width = len(self.names)
        columns = [np.asarray(columns[k], dtype=float) for k in self.names]
        values = np.column_stack(columns).reshape(-1, width)
        binary = [i for i, name in enumerate(self.names) if name not in continuous]
        flags = values[:, binary]
        if ((flags != 0) & (flags != 1) & ~np.isnan(flags)).any():
            raise ValueError("the regression's outcome and yes/no covariates are 1, 0 or missing")
        if len(binary) < width:
            self._rows, self.counts = _distinct_rows(values)
            self.codes = np.zeros(0, dtype=np.int64)
            return
        self._rows = None
        digits = np.where(np.isnan(values), 2.0, values)  # 2 = missing
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
        import numpy as np

        if self._rows is not None:
            return self._rows
        powers = 3 ** np.arange(len(self.names))[::-1]
        digits = (self.codes[:, None] // powers) % 3
        return np.where(digits == 2, np.nan, digits.astype(float)).reshape(-1, len(self.names))

    def _key(self) -> tuple:
        rows = b"" if self._rows is None else self._rows.tobytes()
        return (self.names, self.codes.tobytes(), rows, self.counts.tobytes())

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, Design) and self._key() == other._key()


def _distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``values`` (NaN rows equal to each other), sorted, and
    their counts."""
    import numpy as np

    if len(values) == 0:  # no patient: no row
        return values.reshape(0, values.shape[1]), np.zeros(0, dtype=np.int64)
    finite = values[~np.isnan(values)]
    whole = np.all(finite == np.round(finite))
    if finite.size and whole and finite.min() >= 0 and finite.max() < 64:
        return _distinct_small_integer_rows(values)
    import pandas as pd

    # Infinity stands in for NaN, which group-by would drop; sorted as np.unique sorts.
    marked = pd.DataFrame(np.where(np.isnan(values), np.inf, values))
    counted = marked.groupby(list(marked.columns), sort=True).size()
    rows = np.array(counted.index.tolist(), dtype=float).reshape(len(counted), -1)
    return np.where(np.isinf(rows), np.nan, rows), counted.to_numpy()


def _distinct_small_integer_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_distinct_rows`` of whole numbers 0-63 (the mRS, yes/no values): each row one
    mixed-radix number (a column's digit one past its largest value = missing),
    counted in one pass over the patients when the numbers are few."""
    import numpy as np

    # A column's largest value (-1 when all missing) + 2 digits: its values and missing.
    bases = np.where(np.isnan(values), -1, values).max(axis=0).astype(np.int64) + 2
    digits = np.where(np.isnan(values), bases - 1, values).astype(np.int64)
    powers = np.concatenate([np.cumprod(bases[::-1])[::-1][1:], [1]]).astype(np.int64)
    codes = digits @ powers
    size = int(np.prod(bases))
    if size <= 1 << 22:
        counts = np.bincount(codes, minlength=size)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(codes, return_counts=True)
    rows = (codes[:, None] // powers) % bases
    return np.where(rows == bases - 1, np.nan, rows.astype(float)), counts


@functools.lru_cache(maxsize=32)
def fit(design: Design) -> stats.RegressionResult:
    """The logistic regression of ``design``'s outcome on its covariates, remembered.

    Parameters
    ----------
    design : Design

    Returns
    -------
    stats.RegressionResult
        ``stats.logistic_regression`` with ``method="auto"``: complete cases only.

    Notes
    -----
    Remembered (the adjusted model and each covariate's crude one) because a Firth
    fit with profile-likelihood CIs is slow enough to matter, and the report page asks
    for the same fit on every visit until the data change. The distinct rows are
    fitted with their counts as frequency weights: the same estimates as one row per
    patient (``tests/test_stats.py``), in a time that does not grow with the number
    of patients.
    """
    import pandas as pd

    outcome, *covariates = design.names
    frame = pd.DataFrame(design.rows, columns=design.names)
    return stats.logistic_regression(
        frame[outcome].to_numpy(),
        frame[covariates],
        outcome=outcome,
        method="auto",
        freq_weights=design.counts,
    )


@functools.lru_cache(maxsize=512)
def fit_shift(design: Design, *, check: bool = True) -> ordinal.ShiftResult:
    """The proportional-odds model of ``design``'s ordered outcome (the 3-month mRS) on
    its first covariate (the exposure) and the others, remembered.

    Parameters
    ----------
    design : Design
        The outcome and the exposure first; the outcome among its ``continuous`` keys.
    check : bool
        Whether to check the proportional-odds assumption (``ordinal.proportional_odds``).

    Returns
    -------
    ordinal.ShiftResult
        Complete cases, the distinct rows fitted with their counts as frequency weights.
    """
    import pandas as pd

    rows = design.rows
    frame = pd.DataFrame(rows[:, 1:], columns=design.names[1:])
    return ordinal.proportional_odds(rows[:, 0], frame, freq_weights=design.counts, check=check)
