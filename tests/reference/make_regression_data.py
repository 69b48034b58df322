"""Write the regression test data sets (run once; the CSVs are committed).

.venv/bin/python tests/reference/make_regression_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
rng = np.random.default_rng(20261126)


def binary(n, p):
    return (rng.random(n) < p).astype(int)


def outcome(linear):
    return (rng.random(len(linear)) < 1 / (1 + np.exp(-linear))).astype(int)


# 1. No separation, ~20 events per covariate: maximum likelihood.
n = 200
ml = pd.DataFrame(
    {
        "age_70_plus": binary(n, 0.3),
        "posterior_circulation": binary(n, 0.3),
        "onset_over_6h": binary(n, 0.4),
        "procedure_over_60min": binary(n, 0.5),
    }
)
ml.insert(
    0,
    "y",
    outcome(
        -0.8
        + 0.9 * ml.age_70_plus
        + 0.6 * ml.posterior_circulation
        + 0.4 * ml.onset_over_6h
        + 0.5 * ml.procedure_over_60min
    ),
)
ml.to_csv(HERE / "regression_ml.csv", index=False)

# 2. Quasi-complete separation: every patient with sICH had a poor outcome.
n = 60
quasi = pd.DataFrame({"sich": binary(n, 0.15), "age_70_plus": binary(n, 0.35)})
y = outcome(-0.5 + 0.8 * quasi.age_70_plus)
y[quasi.sich == 1] = 1
quasi.insert(0, "y", y)
quasi.to_csv(HERE / "regression_quasi.csv", index=False)

# 3. Complete separation: the outcome equals decompressive_craniectomy.
n = 30
complete = pd.DataFrame({"decompressive_craniectomy": binary(n, 0.4), "female": binary(n, 0.5)})
complete.insert(0, "y", complete.decompressive_craniectomy.to_numpy())
complete.to_csv(HERE / "regression_complete.csv", index=False)

# 4. No separation but few events per covariate: Firth by the events-per-covariate rule.
n = 45
few = pd.DataFrame(
    {
        "age_70_plus": binary(n, 0.4),
        "posterior_circulation": binary(n, 0.4),
        "onset_over_6h": binary(n, 0.5),
    }
)
few.insert(0, "y", outcome(-0.9 + 0.8 * few.age_70_plus + 0.5 * few.posterior_circulation))
few.to_csv(HERE / "regression_few_events.csv", index=False)
