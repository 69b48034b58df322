"""Category codes of the interchange format (shared/spec/interchange-columns.md).

The stored values are exactly the interchange codes; the labels are what
nurses and investigators read.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    DATA_ENTRY = "data_entry", _("Data entry (study nurse)")
    INVESTIGATOR = "investigator", _("Investigator")
    MONITOR = "monitor", _("Monitor")
    # Manages the users and the data of their own sites only, like every other role.
    SITE_ADMIN = "site_admin", _("Site administrator")
    # Runs the registry across all sites (the code "admin" is kept for existing accounts).
    ADMIN = "admin", _("Registry administrator (all sites)")


class Language(models.TextChoices):
    """The languages of the pages (settings.LANGUAGES), each named in itself so that a
    reader finds her own language whatever language the page is in."""

    ENGLISH = "en", "English"
    VIETNAMESE = "vi", "Tiếng Việt"


class SectionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    COMPLETE = "complete", _("Complete")


class Sex(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")


class Circulation(models.TextChoices):
    ANTERIOR = "anterior", _("Anterior")
    POSTERIOR = "posterior", _("Posterior")


class Diagnosis(models.TextChoices):
    OCCLUSION = "occlusion", _("Occlusion (100%)")
    STENOSIS = "stenosis", _("Stenosis")


class VesselSite(models.TextChoices):
    ICA_EXTRA = "ica_extra", _("ICA, extracranial")
    ICA_INTRA = "ica_intra", _("ICA, intracranial")
    M1 = "m1", _("MCA, M1 segment")
    M2 = "m2", _("MCA, M2 segment")
    VA_EXTRA = "va_extra", _("Vertebral artery, extracranial")
    VA_INTRA = "va_intra", _("Vertebral artery, intracranial")
    BA = "ba", _("Basilar artery")


class Anesthesia(models.TextChoices):
    SEDATION = "sedation", _("Sedation")
    GENERAL = "general", _("General anaesthesia")


class MtTechnique(models.TextChoices):
    ASPIRATION = "aspiration", _("Aspiration")
    STENT_RETRIEVER = "stent_retriever", _("Stent retriever")
    COMBINED = "combined", _("Combined (aspiration + stent retriever)")


class Mtici(models.TextChoices):
    GRADE_0 = "0", _("0 - no perfusion")
    GRADE_1 = "1", _("1 - antegrade flow past the occlusion, little distal perfusion")
    GRADE_2A = "2a", _("2a - reperfusion of less than half of the territory")
    GRADE_2B = "2b", _("2b - reperfusion of half or more of the territory")
    GRADE_2C = "2c", _("2c - near-complete reperfusion")
    GRADE_3 = "3", _("3 - complete reperfusion")


class StentType(models.TextChoices):
    SELF_EXPANDING = "self_expanding", _("Self-expanding")
    BALLOON_EXPANDABLE = "balloon_expandable", _("Balloon-expandable")


class FollowupMethod(models.TextChoices):
    TELEPHONE = "telephone", _("Telephone")
    CLINIC = "clinic", _("Clinic visit")


# Modified Rankin Scale in words, used as help text and in readable history.
MRS_LABELS = {
    0: _("0 - no symptoms"),
    1: _("1 - no significant disability despite symptoms"),
    2: _("2 - slight disability: looks after own affairs without assistance"),
    3: _("3 - moderate disability: needs some help, walks without assistance"),
    4: _("4 - moderately severe: cannot walk or attend to bodily needs without help"),
    5: _("5 - severe disability: bedridden, incontinent, constant nursing care"),
    6: _("6 - dead"),
}
