"""The study's logistic regression fitted from the per-patient columns, and remembered.

Between the read (``datasets.PatientColumns.binary``: one array per variable) and the
statistics (``stats.logistic_regression``): a ``Design`` turns the columns into their
distinct rows and counts, ``fit`` fits those with the counts as frequency weights and
remembers the fit. No Django: plain arrays in, a ``stats.RegressionResult`` out.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
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
        # Column by column: a design is built 50 times a report from 100,000-patient
        # columns, and a patients x variables matrix would be copied at each step.
        values = [np.asarray(columns[k], dtype=float).ravel() for k in self.names]
        for name, column in zip(self.names, values, strict=True):
            if name not in continuous and not _yes_no(column):
                raise ValueError(
                    "the regression's outcome and yes/no covariates are 1, 0 or missing"
                )
        if any(name in continuous for name in self.names):
            self._rows, self.counts = _distinct_rows(values)
            self.codes = np.zeros(0, dtype=np.int64)
            return
        self._rows = None
        width = len(self.names)
        digits = (np.where(np.isnan(c), 2, c) for c in values)
        codes = _mixed_radix(digits, [3] * width, len(values[0]))
        self.codes, self.counts = _count_codes(codes, 3**width, 1 << 20)

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


def _yes_no(column: np.ndarray) -> bool:
    """Whether every value of ``column`` is 1, 0 or NaN."""
    import numpy as np

    return not ((column != 0) & (column != 1) & ~np.isnan(column)).any()


def _mixed_radix(digits: Iterable[np.ndarray], bases: list[int], n: int) -> np.ndarray:
    """One whole number for each of ``n`` patients from a digit per column, the first
    column the most significant (the i-th digits below ``bases[i]``).

    ``digits`` may be a generator: each column's digits are then made, added and freed
    in turn (a column of a million patients is 8 MB; a design has up to a dozen).
    """
    import numpy as np

    # In floating point (exact below 2**53) when the numbers allow: the digits are
    # floats, and one conversion at the end costs less than one per column.
    exact = float(np.prod(np.asarray(bases, dtype=float))) < 2.0**53
    codes = np.zeros(n, dtype=float if exact else np.int64)
    for digit, base in zip(digits, bases, strict=True):
        codes *= int(base)
        codes += digit if exact else digit.astype(np.int64)
    return codes.astype(np.int64)


def _count_codes(codes: np.ndarray, size: int, dense: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``codes`` (below ``size``), sorted, and how often each occurs:
    counted in one pass over the patients when ``size`` is at most ``dense``."""
    import numpy as np

    if size <= dense:
        counts = np.bincount(codes, minlength=size)
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(codes, return_counts=True)


def _distinct_rows(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the columns ``values`` (NaN rows equal to each other),
    sorted, and their counts."""
    import numpy as np

    width = len(values)
    if len(values[0]) == 0:  # no patient: no row
        return np.zeros((0, width)), np.zeros(0, dtype=np.int64)
    missing = [np.isnan(c) for c in values]
    # Each column's largest value (-1 when all missing): the small-integer test and
    # bases. fmax / fmin pass over NaN without a copy of the column.
    largest = [np.nan_to_num(np.fmax.reduce(c), nan=-1.0) for c in values]
    smallest = [np.nan_to_num(np.fmin.reduce(c), nan=0.0) for c in values]
    whole = all(np.all((c == np.round(c)) | m) for c, m in zip(values, missing, strict=True))
    if not all(m.all() for m in missing) and whole and min(smallest) >= 0 and max(largest) < 64:
        return _distinct_small_integer_rows(values, missing, largest)
    import pandas as pd

    # Infinity stands in for NaN, which group-by would drop; sorted as np.unique sorts.
    matrix = np.column_stack(values).reshape(-1, width)
    marked = pd.DataFrame(np.where(np.isnan(matrix), np.inf, matrix))
    counted = marked.groupby(list(marked.columns), sort=True).size()
    rows = np.array(counted.index.tolist(), dtype=float).reshape(len(counted), -1)
    return np.where(np.isinf(rows), np.nan, rows), counted.to_numpy()


def _distinct_small_integer_rows(
    values: list[np.ndarray], missing: list[np.ndarray], largest: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``_distinct_rows`` of whole numbers 0-63 (the mRS, yes/no values): each row one
    mixed-radix number (a column's digit one past its largest value = missing),
    counted in one pass over the patients when the numbers are few."""
    import numpy as np

    # A column's largest value (-1 when all missing) + 2 digits: its values and missing.
    bases = np.array([int(v) + 2 for v in largest], dtype=np.int64)
    digits = (np.where(m, b - 1, c) for c, m, b in zip(values, missing, bases, strict=True))
    codes = _mixed_radix(digits, bases, len(values[0]))
    codes, counts = _count_codes(codes, int(np.prod(bases)), 1 << 22)
    powers = np.concatenate([np.cumprod(bases[::-1])[::-1][1:], [1]]).astype(np.int64)
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
