"""The study's logistic regression fitted from the per-patient columns, and remembered.

Between the read (``datasets.PatientColumns.binary``: one array per variable) and the
statistics (``stats.logistic_regression``): a ``Design`` turns the columns into their
distinct rows and counts, ``fit`` fits those with the counts as frequency weights and
remembers the fit. No Django: plain arrays in, a ``stats.RegressionResult`` out.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from . import stats

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    import numpy as np


class Design:
    """A regression's data as its distinct rows and their counts: hashable by
    content, so that ``fit`` can remember its fit, and small enough to remember.

    The variables are binary (1 / 0 / missing), so a row is a base-3 number; the
    rows are rebuilt from the counts in that number's order. The database returns
    patients in no fixed order; the same data must give the same fit and digits.

    Parameters
    ----------
    outcome : str
        The outcome's key in ``columns``.
    covariates : tuple of str
        The covariates' keys, in the order of the fit's terms.
    columns : dict
        Key -> one value per patient: 1 / 0 / NaN (or True / False / None).

    Raises
    ------
    ValueError
        When a value is neither 1, 0 nor missing.
    """

    def __init__(self, outcome: str, covariates: tuple[str, ...], columns: dict):
        import numpy as np

        self.names = (outcome, *covariates)
        width = len(self.names)
        columns = [np.asarray(columns[k], dtype=float) for k in self.names]
        digits = np.column_stack(columns).reshape(-1, width)
        if ((digits != 0) & (digits != 1) & ~np.isnan(digits)).any():
            raise ValueError("the regression's outcome and covariates are yes/no variables")
        digits = np.where(np.isnan(digits), 2.0, digits)  # 2 = missing
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

        powers = 3 ** np.arange(len(self.names))[::-1]
        digits = (self.codes[:, None] // powers) % 3
        return np.where(digits == 2, np.nan, digits.astype(float)).reshape(-1, len(self.names))

    def _key(self) -> tuple:
        return (self.names, self.codes.tobytes(), self.counts.tobytes())

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, Design) and self._key() == other._key()


@functools.lru_cache(maxsize=8)
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
    Remembered because a Firth fit with profile-likelihood CIs is slow enough to
    matter, and the report page asks for the same fit on every visit until the data
    change. The distinct rows are fitted with their counts as frequency weights: the
    same estimates as one row per patient (``tests/test_stats.py``), in a time that
    does not grow with the number of patients.
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
