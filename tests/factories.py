"""factory_boy factories: valid records by default, override what a test needs."""

import datetime as dt

import factory
from django.utils import timezone

from registry import rules, synthetic
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

ONSET = synthetic.ONSET
PASSWORD = "correct-horse-battery"  # every UserFactory user's
# The typical synthetic patient: every factory's defaults.
TYPICAL = synthetic.row()


def _later(anchor, delay):
    return None if anchor is None else anchor + delay


def _factory(model, **declarations):
    """A factory of ``model`` whose defaults are the typical patient's values."""
    names = {field.name for field in model._meta.concrete_fields}
    defaults = {name: value for name, value in TYPICAL.items() if name in names}
    for name in set(defaults) & rules.RECORDED_WHEN_KNOWN:
        # A quality-of-care time follows the time a test sets (groin puncture...).
        spec = synthetic.FIELDS[name]
        if spec.after in names and TYPICAL[name] is not None:
            defaults[name] = factory.LazyAttribute(
                lambda o, after=spec.after, delay=spec.typical: _later(getattr(o, after), delay)
            )
    meta = type("Meta", (), {"model": model})
    return type(
        f"{model.__name__}Factory",
        (factory.django.DjangoModelFactory,),
        {"__module__": __name__, "Meta": meta, **defaults, **declarations},
    )


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
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def sites(self, create, extracted, **kwargs):
        if create and extracted:
            self.sites.set(extracted)


PatientFactory = _factory(
    Patient,
    study_id=factory.Sequence(lambda n: f"P-{n:04d}"),
    site=factory.SubFactory(SiteFactory),
)
AdmissionFactory = _factory(Admission, patient=factory.SubFactory(PatientFactory))
ImagingFactory = _factory(Imaging, patient=factory.SubFactory(PatientFactory))
ProcedureFactory = _factory(Procedure, patient=factory.SubFactory(PatientFactory))
ComplicationsFactory = _factory(Complications, patient=factory.SubFactory(PatientFactory))
FollowUpFactory = _factory(FollowUp, patient=factory.SubFactory(PatientFactory))


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
