"""The methods of the study tables in plain clinical language, stated once.

The report page prints them as footnotes under each table and the Word report
(``analytics.report_docx``) as footnotes and as its methods paragraph, from a
``study_tables`` result: the methods the numbers were actually computed with.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .notes import translate_note

# numpy.percentile methods a reader may meet, said in words.
PERCENTILE_METHODS = {
    "linear": gettext_lazy("interpolated between the two nearest values (R's default)"),
    "weibull": gettext_lazy("by the Weibull rule (as Stata's centile and SPSS)"),
}

SOFTWARE = ("django", "numpy", "scipy", "statsmodels", "firthmodels", "pandas", "matplotlib")


def baseline(percentile_method: str) -> str:
    """The baseline table's footnote."""
    quartiles = PERCENTILE_METHODS.get(percentile_method, percentile_method)
    return _(
        "n (%%) of the patients with the value recorded. Mean ± standard deviation; "
        "median (interquartile range), the quartiles %(quartiles)s."
    ) % {"quartiles": quartiles}


def p_value(p_method: str) -> str:
    """How the p-values of Tables I and III were computed."""
    if p_method == "wald":
        return _("p: Wald test of the risk ratio, as in the published paper.")
    return _("p: two-sided Fisher's exact test.")


def risks(p_method: str) -> str:
    """The footnote of Tables I and III."""
    return " ".join(
        (
            _(
                "Risk ratio with 95 % CI by the log method (Katz); risk difference with "
                "95 % CI by the normal approximation (Wald); number needed to treat or to "
                "harm = 1 / risk difference, rounded up to a whole patient, 95 % CI from the "
                "risk difference's limits (Altman)."
            ),
            p_value(p_method),
            _("“–”: not estimable (the note under the row says why)."),
        )
    )


def diagnostic() -> str:
    """The footnote of Tables II and IV."""
    return _(
        "Sensitivity, specificity and predictive values with 95 % CI by the exact "
        "(Clopper–Pearson) method; likelihood ratios with 95 % CI by the log method; "
        "p: two-sided Fisher's exact test."
    )


def outcomes() -> str:
    """The footnote of the outcomes: shares of the patients with the value recorded."""
    return _(
        "n (%) of the patients with the value recorded; the 3-month outcomes over the "
        "patients with the 3-month mRS recorded."
    )


REGRESSION_METHODS = {
    "logit": gettext_lazy(
        "logistic regression by maximum likelihood; odds ratios with 95 % CI and p by the "
        "Wald method"
    ),
    "firth": gettext_lazy(
        "logistic regression by Firth's penalized likelihood, which stays finite when a "
        "covariate separates the outcome or events are few; 95 % CI by profile likelihood, "
        "p by the penalized likelihood-ratio test"
    ),
    "not_estimable": gettext_lazy("logistic regression: no model could be fitted"),
}


def regression(reg: dict) -> str:
    """The regression's footnote: which model ran, and why."""
    method = REGRESSION_METHODS.get(reg["method"], reg["method"])
    text = _(
        "Multivariable %(method)s, over the %(n)d patients with the outcome and every "
        "covariate recorded (%(excluded)d left out for a missing value)."
    ) % {"method": method, "n": reg["n"], "excluded": reg["n_excluded_missing"]}
    return f"{text} {translate_note(reg['note'])}" if reg.get("note") else text


def software_versions() -> list[tuple[str, str]]:
    """(name, version) of Python and of each package the numbers were computed with."""
    found = [("python", platform.python_version())]
    for package in SOFTWARE:
        try:
            found.append((package, version(package)))
        except PackageNotFoundError:
            continue
    return found


def software() -> str:
    """The software and versions the numbers were computed with, as a sentence."""
    (_python, python), *packages = software_versions()
    return _("Python %(python)s with %(packages)s.") % {
        "python": python,
        "packages": ", ".join(f"{name} {number}" for name, number in packages),
    }


def footnotes(result: dict) -> dict[str, str]:
    """Every table's footnote for a ``study_tables`` result."""
    notes = {
        "baseline": baseline(result["baseline"]["age"]["percentile_method"]),
        "risks": risks(result["p_method"]),
        "diagnostic": diagnostic(),
        "outcomes": outcomes(),
    }
    if "regression" in result:
        notes["regression"] = regression(result["regression"])
    return notes
