"""The study's variables and the rows of its tables, stated once.

Every variable is a three-valued database expression on the ``Patient``
queryset (True, False, or NULL when not recorded). The derived values
(thresholds such as age >= 70 or onset > 6 h) come from ``registry.derived``;
this module only adds the plain yes/no fields and the category comparisons
that the study tables need, and names the rows of each table
(``shared/spec/study-tables-json.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.utils.translation import gettext_lazy as _

from registry import derived
from registry.choices import Anesthesia, Circulation, Diagnosis, Sex, StentType, VesselSite

# One definition of "True / False / NULL when an input is missing" (registry.derived).
tristate = derived.tristate


def _field(path: str) -> ExpressionWrapper:
    """A nullable yes/no field is already three-valued."""
    return ExpressionWrapper(F(path), output_field=BooleanField(null=True))


def _equals(path: str, value: str):
    return tristate(Q(**{path: value}), path)


# Plain yes/no fields of the case-report form, by section.
FIELD_FLAGS = {
    "transfer": "admission__transfer",
    "hypertension": "admission__hypertension",
    "smoking": "admission__smoking",
    "diabetes": "admission__diabetes",
    "myocardial_infarction": "admission__myocardial_infarction",
    "atrial_fibrillation": "admission__atrial_fibrillation",
    "chronic_kidney_disease": "admission__chronic_kidney_disease",
    "dysphagia": "admission__dysphagia",
    "iv_thrombolysis": "admission__iv_thrombolysis",
    "swi_clot": "imaging__swi_clot",
    "mt_performed": "procedure__mt_performed",
    "post_dilation": "procedure__post_dilation",
    "dapt_loading": "procedure__dapt_loading",
    "ich": "complications__ich",
    "sich": "complications__sich",
    "new_infarct": "complications__new_infarct",
    "cerebral_swelling": "complications__cerebral_swelling",
    "decompressive_craniectomy": "complications__decompressive_craniectomy",
    "metabolic_acidosis": "complications__metabolic_acidosis",
    "rehabilitation": "followup__rehabilitation",
}


def variable_expressions() -> dict[str, object]:
    """Every binary variable of the study tables as a fresh database expression."""
    expressions: dict[str, object] = {key: _field(path) for key, path in FIELD_FLAGS.items()}
    expressions.update(
        {
            "female": _equals("sex", Sex.FEMALE),
            "male": _equals("sex", Sex.MALE),
            "anterior_circulation": _equals("imaging__circulation", Circulation.ANTERIOR),
            "posterior_circulation": _equals("imaging__circulation", Circulation.POSTERIOR),
            "sedation": _equals("procedure__anesthesia", Anesthesia.SEDATION),
            "general_anesthesia": _equals("procedure__anesthesia", Anesthesia.GENERAL),
            "self_expanding_stent": _equals("procedure__stent_type", StentType.SELF_EXPANDING),
            "balloon_expandable_stent": _equals(
                "procedure__stent_type", StentType.BALLOON_EXPANDABLE
            ),
            "mri_occlusion": _equals("imaging__mri_diagnosis", Diagnosis.OCCLUSION),
            "dsa_occlusion": _equals("procedure__dsa_diagnosis", Diagnosis.OCCLUSION),
            # Lack of rehabilitation: rehabilitation = 0 exposed, = 1 unexposed.
            "no_rehabilitation": tristate(
                Q(followup__rehabilitation=False), "followup__rehabilitation"
            ),
        }
    )
    expressions.update(derived.flags())
    return expressions


VARIABLE_KEYS = tuple(variable_expressions())

LABELS = {
    **derived.LABELS,
    "transfer": _("Transferred from another hospital"),
    "age_70_plus": _("Age >= 70 years"),
    "female": _("Women"),
    "male": _("Men"),
    "smoking": _("Smoking"),
    "hypertension": _("Hypertension"),
    "atrial_fibrillation": _("AF"),
    "chronic_kidney_disease": _("CKD"),
    "diabetes": _("Diabetes"),
    "myocardial_infarction": _("Myocardial infarction"),
    "iv_thrombolysis": _("rTPA"),
    "dapt_loading": _("DAPT"),
    "onset_over_6h": _("Onset over 6 hours"),
    "dysphagia": _("Dysphagia"),
    "dwi_aspects_lt8": _("DWI-ASPECTS < 8 points"),
    "pc_aspects_lt6": _("pc-ASPECTS < 6 points"),
    "anterior_circulation": _("Anterior circulation lesion"),
    "posterior_circulation": _("Posterior circulation lesion"),
    "sedation": _("Anesthesia (sedation)"),
    "general_anesthesia": _("General anaesthesia"),
    "self_expanding_stent": _("Self-expanding stent"),
    "balloon_expandable_stent": _("Balloon-expandable stent"),
    "only_ris": _("Number of procedures: Only RIS"),
    "mt_performed": _("MT before RIS"),
    "procedure_over_60min": _("Total procedure time > 60 minutes"),
    "any_complication": _("Complication"),
    "new_infarct": _("Post-procedural new infarcts"),
    "ich": _("ICH"),
    "sich": _("sICH"),
    "cerebral_swelling": _("Cerebral swelling"),
    "decompressive_craniectomy": _("Decompressive craniectomy"),
    "metabolic_acidosis": _("Metabolic acidosis (renal failure)"),
    "rehabilitation": _("Rehabilitation"),
    "no_rehabilitation": _("Lack of rehabilitation"),
    "post_dilation": _("Post-dilation"),
    "swi_clot": _("Clot on SWI"),
    "mri_occlusion": _("Occlusion on 3 T MRI"),
    "dsa_occlusion": _("Occlusion on DSA"),
}

POPULATIONS = ("all", "anterior", "posterior")


@dataclass(frozen=True)
class Row:
    """A row of an exposure x outcome table."""

    key: str
    population: str = "all"

    @property
    def label(self):
        return LABELS[self.key]


# Table I (shared/spec/study-tables-json.md, "Table I rows"), in the paper's order.
TABLE1_OUTCOME = "poor_outcome_3m"
TABLE1_ROWS = (
    Row("age_70_plus"),
    Row("female"),
    Row("smoking"),
    Row("hypertension"),
    Row("atrial_fibrillation"),
    Row("chronic_kidney_disease"),
    Row("diabetes"),
    Row("myocardial_infarction"),
    Row("iv_thrombolysis"),
    Row("dapt_loading"),
    Row("onset_over_6h"),
    Row("dysphagia"),
    Row("dwi_aspects_lt8", "anterior"),
    Row("pc_aspects_lt6", "posterior"),
    Row("posterior_circulation"),
    Row("sedation"),
    Row("self_expanding_stent"),
    Row("only_ris"),
    Row("procedure_over_60min"),
    Row("any_complication"),
    Row("new_infarct"),
    Row("sich"),
    Row("decompressive_craniectomy"),
    Row("no_rehabilitation"),
)

# Table III: each exposure against each outcome (all patients with both recorded).
TABLE3_EXPOSURES = ("self_expanding_stent", "dapt_loading")
TABLE3_OUTCOMES = ("new_infarct", "sich")


@dataclass(frozen=True)
class Diagnostic:
    """A test against a reference standard (Tables II and IV)."""

    key: str
    test: str  # contract name of the test column
    reference: str
    positive: str
    test_variable: str  # binary variable: test positive
    reference_variable: str
    title: object


TABLE2 = Diagnostic(
    key="table2",
    test="mri_diagnosis",
    reference="dsa_diagnosis",
    positive="occlusion",
    test_variable="mri_occlusion",
    reference_variable="dsa_occlusion",
    title=_("3 Tesla MRI against angiography (DSA), positive = occlusion"),
)
TABLE4 = Diagnostic(
    key="table4",
    test="swi_clot",
    reference="mt_performed",
    positive="1",
    test_variable="swi_clot",
    reference_variable="mt_performed",
    title=_("Clot on SWI against the decision to perform MT"),
)
DIAGNOSTICS = {TABLE2.key: TABLE2, TABLE4.key: TABLE4}

# Baseline table: n (%) of the patients with the value recorded.
BASELINE_ROWS = (
    "age_70_plus",
    "female",
    "male",
    "transfer",
    "smoking",
    "hypertension",
    "diabetes",
    "myocardial_infarction",
    "atrial_fibrillation",
    "chronic_kidney_disease",
    "dysphagia",
    "iv_thrombolysis",
    "onset_over_6h",
    "anterior_circulation",
    "posterior_circulation",
    "mri_occlusion",
    "dsa_occlusion",
    "swi_clot",
    "dwi_aspects_lt8",
    "pc_aspects_lt6",
    "sedation",
    "general_anesthesia",
    "mt_performed",
    "only_ris",
    "self_expanding_stent",
    "balloon_expandable_stent",
    "post_dilation",
    "dapt_loading",
    "procedure_over_60min",
    "recanalized",
    "any_complication",
    "new_infarct",
    "ich",
    "sich",
    "metabolic_acidosis",
    "cerebral_swelling",
    "decompressive_craniectomy",
    "rehabilitation",
    "no_rehabilitation",
    "non_poor_3m",
    "good_outcome_3m",
    "poor_outcome_3m",
    "death_3m",
)

# Continuous baseline values: key -> (label, database path or interval name, unit).
CONTINUOUS = {
    "age": (_("Age (years)"), "age_years"),
    "nihss_admission": (_("NIHSS on admission"), "admission__nihss_admission"),
    "onset_to_door_hours": (_("Onset to door (hours)"), "onset_to_door"),
    "procedure_minutes": (_("Procedure time (minutes)"), "procedure_duration"),
}

MRS_TIMEPOINTS = {
    "admission": ("admission__admission_mrs", _("Admission")),
    "discharge": ("complications__discharge_mrs", _("Discharge")),
    "month3": ("followup__mrs_3m", _("3 months")),
}
MRS_GRADES = tuple(range(7))

OCCLUSION_SITES = tuple(VesselSite.values)
OCCLUSION_SITE_LABELS = dict(VesselSite.choices)
OCCLUSION_PATHS = {"mri": "imaging__mri_site", "dsa": "procedure__dsa_site"}

RECANALIZATION_POPULATIONS = ("all", "anterior", "posterior")

# The outcome rates given with an exact CI (the contract's ``outcomes.rates``), in order.
OUTCOME_RATES = {
    "recanalization_all": _("Successful recanalization (mTICI 2b–3): all"),
    "recanalization_anterior": _("Successful recanalization (mTICI 2b–3): anterior circulation"),
    "recanalization_posterior": _("Successful recanalization (mTICI 2b–3): posterior circulation"),
    "death_3m": _("Death by 3 months (mRS 6)"),
    "mrs_0_2_3m": _("Good outcome at 3 months (mRS 0–2)"),
    "mrs_0_3_3m": _("Non-poor outcome at 3 months (mRS 0–3)"),
}

# Continuous covariates of the regression, entered linearly: key -> (label, the unit its
# OR is per). The key is the contract's name; ``datasets.CONTINUOUS_COLUMNS`` reads them.
REGRESSION_CONTINUOUS = {
    "age_years": (_("Age (years)"), _("per year")),
    "nihss_admission": (_("NIHSS on admission"), _("per point")),
    "onset_to_door_hours": (_("Onset to door (hours)"), _("per hour")),
    "procedure_minutes": (_("Procedure time (minutes)"), _("per minute")),
    "dwi_aspects": (_("DWI-ASPECTS"), _("per point")),
    "pc_aspects": (_("pc-ASPECTS"), _("per point")),
}
# The column of ``datasets.PatientColumns.continuous`` each continuous covariate reads.
REGRESSION_CONTINUOUS_COLUMNS = {"age_years": "age"}

# Covariates an investigator may put in the regression: the binary exposures of Table I
# and the continuous values above.
REGRESSION_CHOICES = (*(row.key for row in TABLE1_ROWS), *REGRESSION_CONTINUOUS)

# The shift analysis's ordered outcome: the 3-month mRS, 0-6, higher = worse.
SHIFT_OUTCOME = "mrs_3m"

# The 3-month mRS and every value derived from it: the outcome itself, never a covariate.
OUTCOME_DERIVED = (*derived.MRS_3M_FLAGS, "mrs_3m")


def label(key: str):
    if key in REGRESSION_CONTINUOUS:
        return REGRESSION_CONTINUOUS[key][0]
    return LABELS.get(key, key)


def unit(key: str):
    """What a covariate's OR is per: one unit of a continuous value, or "yes vs no"."""
    if key in REGRESSION_CONTINUOUS:
        return REGRESSION_CONTINUOUS[key][1]
    return _("yes vs no")
