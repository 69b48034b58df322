"""The statistics' notes, read in the page's language.

``stats`` is pure Python and writes its notes (why an estimate is missing, which method
ran) in English, the language of the study-tables JSON. A page translates each note
here, pattern by pattern; a note no pattern knows is shown as it is.
"""

from __future__ import annotations

import re

from django.utils.formats import get_format
from django.utils.translation import gettext_lazy as _

WHERE = {
    "either group": _("either group"),
    "the exposed": _("the exposed"),
    "the unexposed": _("the unexposed"),
}
PATTERNS = [
    (
        r"Haldane correction: 0\.5 added to all four cells for RR, OR and Wald p",
        _("Haldane correction: 0.5 added to all four cells for RR, OR and Wald p"),
    ),
    (
        r"Haldane correction requested but not applied \(a comparison group is empty\)",
        _("Haldane correction requested but not applied (a comparison group is empty)"),
    ),
    (
        r"Haldane correction requested but not applied \(no zero cell\)",
        _("Haldane correction requested but not applied (no zero cell)"),
    ),
    (r"RD = 0: number needed is infinite", _("RD = 0: number needed is infinite")),
    (
        r"RR not estimable: a comparison group is empty",
        _("RR not estimable: a comparison group is empty"),
    ),
    (
        r"RR not estimable: no event in (?P<where>either group|the exposed|the unexposed)",
        _("RR not estimable: no event in %(where)s"),
    ),
    (r"OR not estimable: a zero cell", _("OR not estimable: a zero cell")),
    (
        r"Wald p not estimable: ln RR is infinite with a zero event cell",
        _("Wald p not estimable: ln RR is infinite with a zero event cell"),
    ),
    (
        r"(?P<name>LR[+-]) not estimable: no reference-positive or -negative",
        _("%(name)s not estimable: no reference-positive or -negative"),
    ),
    (
        r"(?P<name>LR[+-]) not estimable: infinite \(denominator proportion 0\)",
        _("%(name)s not estimable: infinite (denominator proportion 0)"),
    ),
    (
        r"(?P<name>LR[+-]) = 0; log-method CI not estimable",
        _("%(name)s = 0; log-method CI not estimable"),
    ),
    (
        r"(?P<n>\d+) patient\(s\) excluded for a missing value",
        _("%(n)s patient(s) excluded for a missing value"),
    ),
    (
        r"no variation, OR not estimable: (?P<names>[\w, ]+)",
        _("no variation, OR not estimable: %(names)s"),
    ),
    (r"^no variation$", _("no variation")),
    (
        r"left out, no variation: (?P<names>[\w, ]+)",
        _("left out, no variation: %(names)s"),
    ),
    (
        r"RD CI not estimable: every patient or no patient of each group had the event",
        _("RD CI not estimable: every patient or no patient of each group had the event"),
    ),
    (
        r"RR not estimable: every patient in both groups had the event",
        _("RR not estimable: every patient in both groups had the event"),
    ),
    (
        r"not estimable: the covariates are collinear",
        _("not estimable: the covariates are collinear"),
    ),
    (
        r"not estimable: the groups' mRS do not overlap",
        _("not estimable: the groups' mRS do not overlap"),
    ),
    (r"the model did not converge", _("the model did not converge")),
    (
        r"no patient has the outcome and every covariate recorded",
        _("no patient has the outcome and every covariate recorded"),
    ),
    (r"^the covariates are collinear", _("the covariates are collinear")),
    (r"Logit did not converge", _("Logit did not converge")),
    (
        r"proportional odds doubtful: the OR at a cut point of the mRS excludes the common OR",
        _("proportional odds doubtful: the OR at a cut point of the mRS excludes the common OR"),
    ),
    (
        r"maximum likelihood estimates are infinite \(use Firth\)",
        _("maximum likelihood estimates are infinite (use Firth)"),
    ),
    (r"the outcome does not vary", _("the outcome does not vary")),
    (r"no covariate varies", _("no covariate varies")),
    (
        r"separation: (?P<names>[\w, ]+) has a level with all or no events",
        _("separation: %(names)s has a level with all or no events"),
    ),
    (
        r"separation by a combination of covariates "
        r"\(infinite ML estimate for (?P<names>[\w, ]+)\)",
        _("separation by a combination of covariates (infinite ML estimate for %(names)s)"),
    ),
    (r"(?P<epc>[\d.]+) events per covariate", _("%(epc)s events per covariate")),
    (r"Firth fit did not converge", _("Firth fit did not converge")),
    (r"NNTB (?P<nntb>\S+) to ∞ to NNTH (?P<nnth>\S+)", _("NNTB %(nntb)s to ∞ to NNTH %(nnth)s")),
    (r"(?P<kind>NN[TH]) (?P<low>[\d.]+) to (?P<high>\S+)", _("%(kind)s %(low)s to %(high)s")),
]
# A note may open a sentence (the regression's note is written as sentences).
COMPILED = [(re.compile(pattern, re.IGNORECASE), message) for pattern, message in PATTERNS]
DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def local_decimals(text: str) -> str:
    """``text`` with each decimal point written as the page's language writes it."""
    separator = get_format("DECIMAL_SEPARATOR")
    return text if separator == "." else DECIMAL_POINT.sub(separator, text)


def _translated(match: re.Match, message) -> str:
    values = {key: str(WHERE.get(value, value)) for key, value in match.groupdict().items()}
    return str(message) % values if values else str(message)


def translate_note(note: str | None) -> str:
    """A note of ``stats`` (or a number needed to treat) in the page's language."""
    if not note:
        return ""
    for pattern, message in COMPILED:
        note = pattern.sub(lambda match, message=message: _translated(match, message), note)
    return local_decimals(note)
