"""factory_boy factories: valid records by default, override what a test needs."""

import datetime as dt

import factory
from django.utils import timezone

from registry.choices import Role
from registry.models import (
    Admission,
    Complications,
    FollowUp,
    Imaging,
    Patient,
    Procedure,
    Site,
    User,
)

ONSET = dt.datetime(2020, 6, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"site{n}")
    name = factory.LazyAttribute(lambda o: f"Hospital {o.code}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.DATA_ENTRY
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def sites(self, create, extracted, **kwargs):
        if create and extracted:
            self.sites.set(extracted)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    study_id = factory.Sequence(lambda n: f"P-{n:04d}")
    site = factory.SubFactory(SiteFactory)
    sex = "male"
    age_years = 63


class AdmissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Admission

    patient = factory.SubFactory(PatientFactory)
    onset_time = ONSET
    door_time = ONSET + dt.timedelta(hours=4)
    transfer = False
    nihss_admission = 18
    premorbid_mrs = 0
    admission_mrs = 5
    hypertension = True
    smoking = False
    diabetes = False
    myocardial_infarction = False
    atrial_fibrillation = False
    chronic_kidney_disease = False
    dysphagia = False
    iv_thrombolysis = False


class ImagingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Imaging

    patient = factory.SubFactory(PatientFactory)
    circulation = "anterior"
    mri_diagnosis = "occlusion"
    mri_site = "m1"
    swi_clot = True
    dwi_aspects = 8
    pc_aspects = None


class ProcedureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Procedure

    patient = factory.SubFactory(PatientFactory)
    anesthesia = "general"
    groin_puncture_time = ONSET + dt.timedelta(hours=5)
    procedure_end_time = ONSET + dt.timedelta(hours=5, minutes=50)
    dsa_diagnosis = "occlusion"
    dsa_site = "m1"
    mt_performed = True
    mt_technique = "aspiration"
    mt_passes = 2
    mtici_after_mt = "2a"
    stent_type = "self_expanding"
    stent_device = "Acclino 4.0 x 25"
    post_dilation = False
    residual_stenosis_pct = 10
    dapt_loading = True
    final_mtici = "3"


class ComplicationsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Complications

    patient = factory.SubFactory(PatientFactory)
    ich = False
    sich = False
    new_infarct = False
    cerebral_swelling = False
    decompressive_craniectomy = False
    metabolic_acidosis = False
    discharge_date = dt.date(2020, 6, 12)
    discharge_mrs = 4


class FollowUpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowUp

    patient = factory.SubFactory(PatientFactory)
    followup_date = dt.date(2020, 8, 30)
    mrs_3m = 2
    followup_method = "telephone"
    rehabilitation = True
    death_date = None


def full_patient(**patient_kwargs) -> Patient:
    """A patient with every section filled with valid, mutually consistent values."""
    patient = PatientFactory(**patient_kwargs)
    for factory_class in (
        AdmissionFactory,
        ImagingFactory,
        ProcedureFactory,
        ComplicationsFactory,
        FollowUpFactory,
    ):
        factory_class(patient=patient)
    return patient


def aware(*args) -> dt.datetime:
    """A date-time in the registry's time zone."""
    return timezone.make_aware(dt.datetime(*args))
