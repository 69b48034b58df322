"""The registry's data model: one model per case-report-form section.

Field names and category codes are exactly the interchange columns
(shared/spec/interchange-columns.md). Single-field ranges come from
``rules.RANGES`` and become both field validators and database check
constraints; cross-field rules come from ``rules.RULES`` and run in
``clean()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, ProtectedError, Q
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from registry import rules
from registry.choices import (
    Anesthesia,
    Circulation,
    Diagnosis,
    FollowupMethod,
    Language,
    Mtici,
    MtTechnique,
    Role,
    SectionStatus,
    Sex,
    StentType,
    VesselSite,
)
from registry.signals import sections_written

from .history import AuditedHistory

__all__ = [
    "ALL_SECTIONS_COMPLETE",
    "SECTIONS_BY_KEY",
    "SECTION_MODELS",
    "STORED",
    "STORED_DERIVED",
    "Admission",
    "Complications",
    "ExportLog",
    "FollowUp",
    "Imaging",
    "Patient",
    "Procedure",
    "Section",
    "Site",
    "User",
    "choice_constraints",
    "mrs_3m_missing",
    "patients_incomplete",
    "patients_refresh_stored",
    "patients_sections_written",
    "section_bit",
    "section_of_field",
    "sections_complete",
    "stored_values_of",
]

# Patient.sections_complete when all five sections (SECTION_MODELS) are complete;
# a constant because the partial index's condition is written into a migration.
ALL_SECTIONS_COMPLETE = 0b11111

HELP = {
    "mrs": _(
        "Modified Rankin Scale: 0 no symptoms; 1 no significant disability; 2 slight "
        "disability, independent; 3 moderate disability, walks unaided; 4 moderately "
        "severe, cannot walk or care for bodily needs unaided; 5 severe, bedridden, "
        "constant care; 6 dead."
    ),
    "mtici": _(
        "modified Treatment In Cerebral Infarction: 0 none; 1 minimal; 2a < 50% of the "
        "territory; 2b >= 50%; 2c near-complete; 3 complete. Recanalization = 2b-3."
    ),
    "wasid": _(
        "WASID grading of intracranial stenosis: mild < 50%, moderate 50-69%, "
        "severe 70-99%, occlusion 100%."
    ),
    "dwi_aspects": _(
        "DWI-ASPECTS, anterior circulation only: 10 minus one point per affected MCA "
        "region (caudate, lentiform, internal capsule, insula, M1-M6)."
    ),
    "pc_aspects": _(
        "pc-ASPECTS, posterior circulation only: 10 minus 1 per thalamus, cerebellum or "
        "PCA territory and minus 2 per midbrain or pons involved."
    ),
    "sich": _(
        "Symptomatic ICH per protocol: post-procedural ICH with mRS >= 5 and no other "
        "evident cause for the increased mRS. Requires ICH = yes."
    ),
}


def range_help(field: str, text=""):
    """Help text ending with the allowed range, read from ``rules.RANGES`` (stated once)."""
    low, high = rules.RANGES[field]
    allowed = format_lazy(_("Allowed: {low}-{high}."), low=low, high=high)
    return format_lazy("{} {}", text, allowed) if text else allowed


def bounded(field: str, verbose_name, **kwargs) -> models.PositiveSmallIntegerField:
    """An optional integer field whose range is ``rules.RANGES[field]``."""
    low, high = rules.RANGES[field]
    kwargs["help_text"] = range_help(field, kwargs.get("help_text", ""))
    kwargs.setdefault("null", True)
    kwargs.setdefault("blank", True)
    return models.PositiveSmallIntegerField(
        verbose_name,
        validators=[MinValueValidator(low), MaxValueValidator(high)],
        **kwargs,
    )


def flag(verbose_name, **kwargs) -> models.BooleanField:
    """A yes/no flag where blank means "not recorded", never "no"."""
    return models.BooleanField(verbose_name, null=True, blank=True, **kwargs)


def category(verbose_name, choices, **kwargs) -> models.CharField:
    return models.CharField(
        verbose_name, max_length=32, choices=choices, blank=True, null=True, **kwargs
    )


def range_constraints(*fields: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(**{f"{name}__isnull": True})
            | Q(**{f"{name}__gte": rules.RANGES[name][0], f"{name}__lte": rules.RANGES[name][1]}),
            name=f"%(class)s_{name}_range",
        )
        for name in fields
    ]


def choice_constraints(**fields) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__in": choices.values}),
            name=f"%(class)s_{name}_code",
        )
        for name, choices in fields.items()
    ]


def _controller_in(branch: rules.Branch) -> dict[str, object]:
    if len(branch.values) == 1:
        return {branch.controller: branch.value}
    return {f"{branch.controller}__in": branch.values}


def branch_constraints(*fields: str) -> list[models.CheckConstraint]:
    constraints = []
    for name in fields:
        branch = rules.BRANCHING[name]
        constraints.append(
            models.CheckConstraint(
                # "controller = value" alone is NULL (so passes) when the controller is
                # blank: require it to be recorded as well.
                condition=Q(**{f"{name}__isnull": True})
                | Q(**{f"{branch.controller}__isnull": False, **_controller_in(branch)}),
                name=f"%(class)s_{name}_branch",
            )
        )
    return constraints


class Site(models.Model):
    code = models.SlugField(_("site code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")

    def __str__(self) -> str:
        return f"{self.code} - {self.name}"


class User(AbstractUser):
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.DATA_ENTRY)
    sites = models.ManyToManyField(Site, verbose_name=_("sites"), blank=True, related_name="users")
    # Empty: the registry's default language (settings.LANGUAGE_CODE).
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, blank=True, default=""
    )
    # Who changed whose rights, when, from what to what: the role, the flags and the site
    # memberships. Never the password hash; signing in (last_login) and the language of
    # the pages change no right.
    history = AuditedHistory(
        excluded_fields=["password", "last_login", "language"], m2m_fields=["sites"]
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(role__in=Role.values), name="user_role_code"),
        ]

    def save(self, *args, **kwargs):
        signing_in = set(kwargs.get("update_fields") or ()) == {"last_login"}
        if signing_in and not hasattr(self, "skip_history_when_saving"):
            self.save_without_historical_record(*args, **kwargs)  # calls save() again
        else:
            super().save(*args, **kwargs)

    def has_written(self) -> bool:
        """Whether any record names this account as its author (a history row, a
        section completed, a query, an export...): such an account is deactivated,
        never deleted, so that the audit trail keeps who did what."""
        from django.contrib.admin.models import LogEntry

        for relation in self._meta.get_fields(include_hidden=True):
            if relation.one_to_many and relation.auto_created and not relation.concrete:
                lookup = {relation.field.name: self}
                if relation.related_model._base_manager.filter(**lookup).exists():
                    return True
        return LogEntry.objects.filter(user=self).exists()


@receiver(pre_delete, sender=User)
def _keep_authors(sender, instance, **kwargs) -> None:
    """Refuse to delete an account named by the admin's log: Django would delete the
    log's entries with it (the registry's own records protect their authors)."""
    from django.contrib.admin.models import LogEntry

    entries = LogEntry.objects.filter(user=instance)
    if entries.exists():
        raise ProtectedError(
            f"{instance.username} wrote to the registry: deactivate the account instead.",
            set(entries[:1]),
        )


class Patient(models.Model):
    study_id = models.CharField(
        _("study ID"),
        max_length=32,
        unique=True,
        validators=[
            RegexValidator(
                rules.STUDY_ID_PATTERN,
                _("Use 1-32 letters, digits or hyphens."),
            )
        ],
    )
    site = models.ForeignKey(Site, verbose_name=_("site"), on_delete=models.PROTECT)
    sex = models.CharField(_("sex"), max_length=8, choices=Sex.choices)
    age_years = models.PositiveSmallIntegerField(
        _("age (years)"),
        validators=[
            MinValueValidator(rules.RANGES["age_years"][0]),
            MaxValueValidator(rules.RANGES["age_years"][1]),
        ],
        help_text=range_help("age_years", _("Age at stroke onset.")),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Stored, not only derived: "no 3-month mRS recorded" includes patients *lacking* a
    # follow-up row, which no index finds, so the follow-up worklist would read every
    # patient of the site. Defined by
    # STORED below; kept by Section.save() / delete() and registry.models.bulk.
    mrs_3m_missing = models.BooleanField(_("3-month mRS missing"), default=True, editable=False)
    # Stored for the same reason: "section incomplete" includes patients *lacking* the
    # section's row (the list's filter would read every patient of the site). One bit
    # per complete section (section_bit()); defined by
    # STORED below; kept by Section.save() / delete() and registry.models.bulk.
    sections_complete = models.PositiveSmallIntegerField(
        _("complete sections"), default=0, editable=False
    )
    history = AuditedHistory(excluded_fields=["mrs_3m_missing", "sections_complete"])

    class Meta:
        ordering = ["study_id"]
        verbose_name = _("patient")
        indexes = [
            # The nurse's patient list filters by site and orders by study ID: a page is
            # read from the index instead of filtering a scan of every patient.
            models.Index(fields=["site", "study_id"], name="patient_site_study_id_idx"),
            # The follow-up worklist: the few patients of a site still without the mRS.
            models.Index(
                fields=["site"],
                condition=Q(mrs_3m_missing=True),
                name="patient_mrs_3m_missing_idx",
            ),
            # The list's "section incomplete" filter: the site's patients with any
            # section incomplete, in the list's order, with their bits so that the
            # page's count reads the index alone (see patients_incomplete()).
            models.Index(
                fields=["site", "study_id", "sections_complete"],
                condition=~Q(sections_complete=ALL_SECTIONS_COMPLETE),
                name="patient_incomplete_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(age_years__gte=rules.RANGES["age_years"][0])
                & Q(age_years__lte=rules.RANGES["age_years"][1]),
                name="patient_age_years_range",
            ),
            models.CheckConstraint(condition=Q(sex__in=Sex.values), name="patient_sex_code"),
            models.CheckConstraint(
                condition=Q(study_id__regex=rules.STUDY_ID_PATTERN),
                name="patient_study_id_format",
            ),
        ]

    def __str__(self) -> str:
        return self.study_id

    def save(self, *args, **kwargs):
        # The stored derived columns are written by their refresh, never from a copy in
        # memory that a section saved since (another request) has made stale.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in STORED_DERIVED
            ]
        super().save(*args, **kwargs)

    def sections(self) -> dict[str, Section | None]:
        """Each section of this patient keyed by its ``key`` (None if not started)."""
        found = {}
        for model in SECTION_MODELS:
            try:
                found[model.key] = getattr(self, model.key)
            except model.DoesNotExist:
                found[model.key] = None
        return found

    def flat_values(self, override: Section | None = None) -> dict[str, object]:
        """All recorded values keyed by interchange column, ``override`` in memory."""
        values: dict[str, object] = {
            "study_id": self.study_id,
            "site": self.site.code if self.site_id else None,
            "sex": self.sex,
            "age_years": self.age_years,
        }
        for key, section in self.sections().items():
            if override is not None and override.key == key:
                section = override
            if section is not None:
                values.update(section.values())
        return values


class Section(models.Model):
    """Fields shared by every case-report-form section (1:1 with the patient)."""

    key: str = ""
    status = models.CharField(
        _("status"), max_length=10, choices=SectionStatus.choices, default=SectionStatus.DRAFT
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("completed by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Incremented on every save; used to refuse a save based on a stale copy.
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        abstract = True

    # The patient's stored columns (STORED) and what other apps keep beside the
    # sections (signals.sections_written) follow every section written through the
    # model; registry.models.bulk does the same for the sections it writes.
    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        patients_sections_written(patient_ids=[self.patient_id], using=self._state.db)

    def delete(self, *args, **kwargs):
        patient_id, using = self.patient_id, self._state.db
        result = super().delete(*args, **kwargs)
        patients_sections_written(patient_ids=[patient_id], using=using)
        return result

    BOOKKEEPING = ("patient", "status", "completed_at", "completed_by", "updated_at", "version")

    @classmethod
    def clinical_fields(cls) -> tuple[str, ...]:
        """Names of the section's clinical fields, in the form's order (the interchange
        order, but for the columns appended to the contract later,
        ``registry.interchange.columns.APPENDED``)."""
        # Computed once per class: the import validates every field of every row.
        cached = cls.__dict__.get("_clinical_fields")
        if cached is None:
            cached = tuple(
                f.name
                for f in cls._meta.concrete_fields
                if f.name not in cls.BOOKKEEPING and not f.name.endswith("_ptr")
            )
            cls._clinical_fields = cached
        return cached

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.clinical_fields()}

    def missing_for_completion(self, values: dict[str, object] | None = None) -> list[str]:
        """Applicable fields still blank (what stops the section being complete)."""
        if values is None:
            values = self.patient.flat_values(override=self)
        return [
            name
            for name in self.clinical_fields()
            if values.get(name) in (None, "")
            and name not in rules.RECORDED_WHEN_KNOWN
            and rules.field_applies(name, values)
        ]

    def clean(self) -> None:
        super().clean()
        # A caller validating a whole patient at once (the bulk import) sets
        # ``_patient_values`` to the complete flat row; otherwise the other
        # sections are read from the database.
        values = getattr(self, "_patient_values", None)
        if values is None:
            values = self.patient.flat_values(override=self)
        errors: dict[str, list] = {}
        own = set(self.clinical_fields())
        for rule in rules.violations(values, fields=own):
            # The message goes next to the first of the rule's fields on this form.
            name = next(n for n in rule.fields if n in own)
            errors.setdefault(name, []).append(rule.message)
        if self.status == SectionStatus.COMPLETE:
            for name in self.missing_for_completion(values):
                errors.setdefault(name, []).append(_("Required to mark the section complete."))
        if errors:
            raise ValidationError(errors)


def patient_link(related_name: str) -> models.OneToOneField:
    return models.OneToOneField(
        Patient,
        verbose_name=_("patient"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name=related_name,
    )


class Admission(Section):
    key = "admission"
    patient = patient_link("admission")
    onset_time = models.DateTimeField(_("onset (last known well)"), null=True, blank=True)
    door_time = models.DateTimeField(
        _("door time"),
        null=True,
        blank=True,
        help_text=_("Arrival at the treating hospital; not before onset."),
    )
    imaging_time = models.DateTimeField(
        _("imaging time"),
        null=True,
        blank=True,
        help_text=_("Start of the first brain imaging at this hospital; not before door time."),
    )
    transfer = flag(_("transferred from another hospital"))
    nihss_admission = bounded("nihss_admission", _("NIHSS on admission"))
    premorbid_mrs = bounded("premorbid_mrs", _("pre-stroke mRS"), help_text=HELP["mrs"])
    admission_mrs = bounded("admission_mrs", _("pre-procedural mRS"), help_text=HELP["mrs"])
    hypertension = flag(_("hypertension"))
    smoking = flag(_("smoking (current or former)"))
    diabetes = flag(_("diabetes"))
    myocardial_infarction = flag(_("myocardial infarction"))
    atrial_fibrillation = flag(_("atrial fibrillation"))
    chronic_kidney_disease = flag(_("chronic kidney disease"))
    dysphagia = flag(_("dysphagia on admission"))
    iv_thrombolysis = flag(_("IV thrombolysis (rTPA) before the procedure"))
    needle_time = models.DateTimeField(
        _("needle time"),
        null=True,
        blank=True,
        help_text=_("Start of the thrombolytic bolus; not before door time."),
    )
    history = AuditedHistory()

    class Meta:
        verbose_name = _("admission")
        constraints = [
            *range_constraints("nihss_admission", "premorbid_mrs", "admission_mrs"),
            models.CheckConstraint(
                condition=Q(onset_time__isnull=True)
                | Q(door_time__isnull=True)
                | Q(door_time__gte=F("onset_time")),
                name="admission_door_after_onset",
            ),
            *branch_constraints("needle_time"),
            models.CheckConstraint(
                condition=Q(imaging_time__isnull=True)
                | Q(door_time__isnull=True)
                | Q(imaging_time__gte=F("door_time")),
                name="admission_imaging_after_door",
            ),
            models.CheckConstraint(
                condition=Q(needle_time__isnull=True)
                | Q(door_time__isnull=True)
                | Q(needle_time__gte=F("door_time")),
                name="admission_needle_after_door",
            ),
        ]


class Imaging(Section):
    key = "imaging"
    patient = patient_link("imaging")
    circulation = category(
        _("circulation"), Circulation.choices, help_text=_("Territory of the target lesion.")
    )
    mri_diagnosis = category(_("3 T MRI/MRA diagnosis"), Diagnosis.choices, help_text=HELP["wasid"])
    mri_site = category(_("3 T MRI occlusion site"), VesselSite.choices)
    swi_clot = flag(_("clot on SWI (susceptibility vessel sign)"))
    dwi_aspects = bounded("dwi_aspects", _("DWI-ASPECTS"), help_text=HELP["dwi_aspects"])
    pc_aspects = bounded("pc_aspects", _("pc-ASPECTS"), help_text=HELP["pc_aspects"])
    history = AuditedHistory()

    class Meta:
        verbose_name = _("imaging")
        verbose_name_plural = _("imaging")
        constraints = [
            *range_constraints("dwi_aspects", "pc_aspects"),
            *choice_constraints(
                circulation=Circulation, mri_diagnosis=Diagnosis, mri_site=VesselSite
            ),
            *branch_constraints("dwi_aspects", "pc_aspects"),
        ]


class Procedure(Section):
    key = "procedure"
    patient = patient_link("procedure")
    anesthesia = category(_("anaesthesia"), Anesthesia.choices)
    groin_puncture_time = models.DateTimeField(
        _("groin puncture time"), null=True, blank=True, help_text=_("Not before door time.")
    )
    procedure_end_time = models.DateTimeField(
        _("procedure end time"),
        null=True,
        blank=True,
        help_text=_("After groin puncture; procedure minutes = end - groin puncture."),
    )
    reperfusion_time = models.DateTimeField(
        _("reperfusion time"),
        null=True,
        blank=True,
        help_text=_(
            "First angiographic run showing mTICI 2b or better; after groin puncture, "
            "not after the procedure end."
        ),
    )
    dsa_diagnosis = category(
        _("DSA diagnosis (reference standard)"), Diagnosis.choices, help_text=HELP["wasid"]
    )
    dsa_site = category(_("DSA occlusion site"), VesselSite.choices)
    mt_performed = flag(_("mechanical thrombectomy before stenting"))
    mt_technique = category(_("MT technique"), MtTechnique.choices)
    mt_passes = bounded("mt_passes", _("MT passes"))
    mtici_after_mt = category(_("mTICI after MT"), Mtici.choices, help_text=HELP["mtici"])
    stent_type = category(_("stent type"), StentType.choices)
    stent_device = models.CharField(
        _("stent device"),
        max_length=200,
        blank=True,
        null=True,
        help_text=_("Device name and size, e.g. Acclino 4.0 x 25."),
    )
    post_dilation = flag(_("post-dilation (balloon inside the stent)"))
    residual_stenosis_pct = bounded(
        "residual_stenosis_pct", _("residual stenosis (%)"), help_text=_("After stenting.")
    )
    dapt_loading = flag(_("DAPT loading dose before stenting"))
    final_mtici = category(_("final mTICI"), Mtici.choices, help_text=HELP["mtici"])
    history = AuditedHistory()

    class Meta:
        verbose_name = _("procedure")
        constraints = [
            *range_constraints("mt_passes", "residual_stenosis_pct"),
            *choice_constraints(
                anesthesia=Anesthesia,
                dsa_diagnosis=Diagnosis,
                dsa_site=VesselSite,
                mt_technique=MtTechnique,
                mtici_after_mt=Mtici,
                stent_type=StentType,
                final_mtici=Mtici,
            ),
            *branch_constraints("mt_technique", "mt_passes", "mtici_after_mt", "reperfusion_time"),
            models.CheckConstraint(
                condition=Q(groin_puncture_time__isnull=True)
                | Q(procedure_end_time__isnull=True)
                | Q(procedure_end_time__gt=F("groin_puncture_time")),
                name="procedure_end_after_groin",
            ),
            models.CheckConstraint(
                condition=Q(reperfusion_time__isnull=True)
                | Q(groin_puncture_time__isnull=True)
                | Q(reperfusion_time__gt=F("groin_puncture_time")),
                name="procedure_reperfusion_after_groin",
            ),
            models.CheckConstraint(
                condition=Q(reperfusion_time__isnull=True)
                | Q(procedure_end_time__isnull=True)
                | Q(reperfusion_time__lte=F("procedure_end_time")),
                name="procedure_reperfusion_by_end",
            ),
        ]


class Complications(Section):
    key = "complications"
    patient = patient_link("complications")
    ich = flag(_("ICH on the 24 h CT"), help_text=_("Any intracranial haemorrhage."))
    sich = flag(_("symptomatic ICH (sICH)"), help_text=HELP["sich"])
    new_infarct = flag(_("new post-procedural infarct"))
    cerebral_swelling = flag(_("cerebral swelling"))
    decompressive_craniectomy = flag(_("decompressive craniectomy"))
    metabolic_acidosis = flag(_("metabolic acidosis due to renal failure"))
    discharge_date = models.DateField(
        _("discharge date"), null=True, blank=True, help_text=_("Not before the door date.")
    )
    nihss_24h = bounded(
        "nihss_24h",
        _("NIHSS at 24 hours"),
        help_text=_("24 hours (plus or minus 6 hours) after the procedure."),
    )
    discharge_mrs = bounded("discharge_mrs", _("mRS at discharge"), help_text=HELP["mrs"])
    history = AuditedHistory()

    class Meta:
        verbose_name = _("complications and discharge")
        verbose_name_plural = _("complications and discharge")
        constraints = [
            *range_constraints("discharge_mrs", "nihss_24h"),
            models.CheckConstraint(
                condition=Q(sich__isnull=True) | Q(sich=False) | Q(ich__isnull=False, ich=True),
                name="complications_sich_requires_ich",
            ),
        ]


class FollowUp(Section):
    key = "followup"
    patient = patient_link("followup")
    followup_date = models.DateField(
        _("follow-up date"),
        null=True,
        blank=True,
        help_text=_("3-month visit or call; after the discharge date."),
    )
    mrs_3m = bounded("mrs_3m", _("mRS at 3 months"), help_text=HELP["mrs"])
    followup_method = category(_("follow-up method"), FollowupMethod.choices)
    rehabilitation = flag(_("rehabilitation after discharge"))
    death_date = models.DateField(
        _("death date"),
        null=True,
        blank=True,
        help_text=_("Blank if alive at last contact. Required when mRS at 3 months is 6."),
    )
    history = AuditedHistory()

    class Meta:
        verbose_name = _("3-month follow-up")
        verbose_name_plural = _("3-month follow-ups")
        constraints = [
            *range_constraints("mrs_3m"),
            *choice_constraints(followup_method=FollowupMethod),
            models.CheckConstraint(
                condition=~Q(mrs_3m=6) | Q(death_date__isnull=False),
                name="followup_mrs6_has_death_date",
            ),
        ]


SECTION_MODELS: tuple[type[Section], ...] = (Admission, Imaging, Procedure, Complications, FollowUp)
SECTIONS_BY_KEY: dict[str, type[Section]] = {m.key: m for m in SECTION_MODELS}


def section_bit(key: str) -> int:
    """The bit of ``Patient.sections_complete`` that says section ``key`` is complete
    (1 admission, 2 imaging, 4 procedure, 8 complications, 16 follow-up)."""
    return 1 << [model.key for model in SECTION_MODELS].index(key)


# ---------------------------------------------------------------- stored derived columns
# Each stored column is declared once (STORED below) from facts about the patient's
# sections; both of its forms are generated from that declaration: the SQL that
# refreshes and checks the stored rows, and the Python that computes it for a patient
# about to be written in bulk with its sections (registry.models.bulk), which would
# otherwise cost a second write of every new patient.


@dataclass(frozen=True)
class SectionHas:
    """The fact that the patient has section ``key`` with ``lookups`` (``field=value``
    or ``field__isnull=...``: the two lookups given both a SQL and a Python form)."""

    key: str
    lookups: tuple[tuple[str, object], ...]

    def __post_init__(self):
        for lookup, _value in self.lookups:
            if lookup.partition("__")[2] not in ("", "isnull"):
                raise ValueError(f"{lookup}: only = and __isnull have a Python form")

    def exists(self, apps) -> Exists:
        """On the stored rows (``apps``: the registry's, or a migration's)."""
        model = apps.get_model("registry", SECTIONS_BY_KEY[self.key].__name__)
        return Exists(model.objects.filter(patient=OuterRef("pk"), **dict(self.lookups)))

    def holds(self, sections: Mapping[str, Mapping]) -> bool:
        """On section records about to be written, by key (a section not written absent)."""
        record = sections.get(self.key)
        if record is None:
            return False
        for lookup, value in self.lookups:
            name, _, lookup_type = lookup.partition("__")
            found = record[name] is None if lookup_type == "isnull" else record[name]
            if found != value:
                return False
        return True


def section_has(key: str, **lookups) -> SectionHas:
    return SectionHas(key, tuple(lookups.items()))


@dataclass(frozen=True)
class Lacks:
    """A flag: True when the patient lacks ``fact``."""

    fact: SectionHas

    def expression(self, apps) -> models.Expression:
        return ~self.fact.exists(apps)

    def of(self, sections: Mapping[str, Mapping]) -> bool:
        return not self.fact.holds(sections)


@dataclass(frozen=True)
class Bits:
    """A set of bits: each ``(bit, fact)``'s bit when the patient has the fact."""

    facts: tuple[tuple[int, SectionHas], ...]

    def expression(self, apps) -> models.Expression:
        total = models.Value(0)
        for bit, fact in self.facts:
            total = total + models.Case(
                models.When(fact.exists(apps), then=models.Value(bit)),
                default=models.Value(0),
            )
        return models.ExpressionWrapper(total, output_field=models.PositiveSmallIntegerField())

    def of(self, sections: Mapping[str, Mapping]) -> int:
        return sum(bit for bit, fact in self.facts if fact.holds(sections))


# Patient columns derived from the sections, stored so that an index finds them.
STORED = {
    # No 3-month mRS recorded (no follow-up row, or one without the mRS): who stays
    # on the follow-up worklist.
    "mrs_3m_missing": Lacks(section_has("followup", mrs_3m__isnull=False)),
    # The bits (section_bit()) of the sections whose status is complete; a section
    # not started is not complete.
    "sections_complete": Bits(
        tuple(
            (section_bit(model.key), section_has(model.key, status=SectionStatus.COMPLETE))
            for model in SECTION_MODELS
        )
    ),
}
STORED_DERIVED = tuple(STORED)


def mrs_3m_missing(followup_model=None) -> models.Expression:
    """``STORED["mrs_3m_missing"]`` as SQL on a patient queryset."""
    return STORED["mrs_3m_missing"].expression((followup_model or FollowUp)._meta.apps)


def sections_complete(patient_model=None) -> models.Expression:
    """``STORED["sections_complete"]`` as SQL on a patient queryset."""
    return STORED["sections_complete"].expression((patient_model or Patient)._meta.apps)


def stored_values_of(sections: Mapping[str, Mapping]) -> dict[str, object]:
    """The stored columns (``STORED``) of a new patient about to be written with these
    section records (field values by section key; a section not written absent)."""
    return {name: column.of(sections) for name, column in STORED.items()}


def patients_incomplete(patients: models.QuerySet, keys) -> models.QuerySet:
    """Those of ``patients`` with any of the sections ``keys`` incomplete (or not
    started), read from ``Patient.sections_complete``."""
    bits = sum(section_bit(key) for key in keys)
    # The first condition is the partial index's, which holds the few patients with
    # anything incomplete; the second keeps those incomplete in these sections.
    return (
        patients.exclude(sections_complete=ALL_SECTIONS_COMPLETE)
        .alias(complete_of_these=F("sections_complete").bitand(bits))
        .exclude(complete_of_these=bits)
    )


def patients_refresh_stored(
    *, patient_ids=None, patient_model=None, fields=None, using: str = "default"
) -> int:
    """Store the derived columns (``STORED_DERIVED``, or those of ``fields``) for
    those patients (all when ``patient_ids`` is None) of the database ``using`` by
    their definitions; one UPDATE per 500 patients. The model and the fields are
    parameters for the data migrations, which have their own historical models and
    columns."""
    patient_model = patient_model or Patient
    apps = patient_model._meta.apps
    values = {name: STORED[name].expression(apps) for name in fields or STORED_DERIVED}
    patients = patient_model.objects.using(using)
    if patient_ids is None:
        return patients.update(**values)
    keys, changed = list(patient_ids), 0
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        changed += patients.filter(pk__in=chunk).update(**values)
    return changed


def patients_sections_written(*, patient_ids, using: str = "default") -> None:
    """After sections of these patients (all when None) were written: their stored
    columns refreshed (``patients_refresh_stored``) and ``signals.sections_written``
    sent, for what other apps keep beside the sections. ``Section.save()`` / ``delete()``
    call it; so must any code that writes sections otherwise (a queryset's
    ``update()``, SQL by hand)."""
    keys = None if patient_ids is None else list(patient_ids)
    patients_refresh_stored(patient_ids=keys, using=using)
    sections_written.send(Section, patient_ids=keys, using=using)


class ExportLog(models.Model):
    """Who took which export when, of which sites, with which filters, identifiable or not."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(_("when"), auto_now_add=True)
    format = models.CharField(_("format"), max_length=10)
    identifiable = models.BooleanField(_("identifiable"))
    site = models.ForeignKey(
        Site,
        verbose_name=_("site"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text=_("The site chosen; blank: all the sites the user may read."),
    )
    sites = models.ManyToManyField(
        Site,
        verbose_name=_("sites covered"),
        blank=True,
        related_name="export_logs",
        help_text=_("The sites whose patients the export could contain."),
    )
    filters = models.JSONField(
        _("filters"),
        default=dict,
        blank=True,
        help_text=_("The filters chosen, as the export form or command named them."),
    )
    n_patients = models.PositiveIntegerField(_("patients"))
    via = models.CharField(_("via"), max_length=20, help_text=_("web or command"))

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("export log entry")
        verbose_name_plural = _("export log")


def section_of_field(name: str) -> type[Section] | None:
    for model in SECTION_MODELS:
        if name in model.clinical_fields():
            return model
    return None
