"""Write the shift-analysis test cohorts (run once; the CSVs are committed).

.venv/bin/python tests/reference/make_shift_data.py

shift_cohort.csv: 85 patients, mRS 0-6 at 3 months, a binary exposure that shifts the
mRS towards worse and age in years. shift_zero_cell.csv: 60 patients in which no exposed
patient has mRS 0 or 1 and no unexposed patient died (mRS 6): zero cells in both groups.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
rng = np.random.default_rng(20261207)


def ordered(linear, cuts):
    """mRS drawn from a proportional-odds model with these cut points."""
    below = 1 / (1 + np.exp(-(np.asarray(cuts)[None, :] - linear[:, None])))
    return (rng.random(len(linear))[:, None] > below).sum(axis=1)


n = 85
exposed = (rng.random(n) < 0.45).astype(int)
age = rng.normal(66, 12, n).round()
mrs = ordered(0.9 * exposed + 0.03 * (age - 66), [-2.0, -1.0, 0.0, 0.7, 1.4, 2.2])
pd.DataFrame({"mrs_3m": mrs, "exposed": exposed, "age_years": age}).to_csv(
    HERE / "shift_cohort.csv", index=False
)

n = 60
exposed = np.repeat([1, 0], [28, 32])
age = rng.normal(66, 12, n).round()
mrs = np.concatenate([rng.choice([2, 3, 4, 5, 6], 28), rng.choice([0, 1, 2, 3, 4, 5], 32)])
pd.DataFrame({"mrs_3m": mrs, "exposed": exposed, "age_years": age}).to_csv(
    HERE / "shift_zero_cell.csv", index=False
)
