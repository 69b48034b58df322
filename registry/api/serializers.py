"""What the API answers and accepts, declared once for the views and the OpenAPI schema.

Clinical values are given as they are stored: numbers, ``true``/``false``/``null`` for
the yes/no questions, codes for the categories, ISO 8601 dates and date-times (local
time with its offset); the codes are those of the data dictionary.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import SECTIONS_BY_KEY, DataFreeze, Patient, Site


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "code", "name"]


class SectionStatusSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="draft or complete; empty: not started")
    version = serializers.IntegerField(help_text="0: not started")


class PatientSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    locked = serializers.SerializerMethodField()
    sections = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = ["id", "study_id", "site", "sex", "age_years", "locked", "sections"]

    def get_locked(self, patient) -> bool:
        try:
            return bool(patient.lock.locked)
        except Patient.lock.RelatedObjectDoesNotExist:
            return False

    @extend_schema_field(serializers.DictField(child=SectionStatusSerializer()))
    def get_sections(self, patient) -> dict:
        return {
            key: {
                "status": section.status if section is not None else "",
                "version": section.version if section is not None else 0,
            }
            for key, section in patient.sections().items()
        }


def json_value(value):
    """A stored value as the API gives it: date-times in local time with their offset."""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class SectionSerializer(serializers.Serializer):
    """One section of the case-report form, as read."""

    patient = serializers.IntegerField()
    section = serializers.CharField()
    status = serializers.CharField(help_text="draft or complete; empty: not started")
    version = serializers.IntegerField(help_text="send it back with a change; 0: not started")
    completed_at = serializers.DateTimeField(allow_null=True)
    completed_by = serializers.CharField(allow_null=True)
    locked = serializers.BooleanField()
    values = serializers.DictField(help_text="clinical field name -> stored value")

    @staticmethod
    def of(patient, key: str, locked: bool) -> dict:
        section = patient.sections()[key]
        model = SECTIONS_BY_KEY[key]
        return {
            "patient": patient.pk,
            "section": key,
            "status": section.status if section is not None else "",
            "version": section.version if section is not None else 0,
            "completed_at": json_value(section.completed_at) if section is not None else None,
            "completed_by": (
                section.completed_by.username
                if section is not None and section.completed_by
                else None
            ),
            "locked": locked,
            "values": {
                name: json_value(getattr(section, name)) if section is not None else None
                for name in model.clinical_fields()
            },
        }


class SectionWriteSerializer(serializers.Serializer):
    """A change of one section: checked by the section's form and saved by its service."""

    version = serializers.IntegerField(
        min_value=0, help_text="the version read (0 for a section not yet started)"
    )
    values = serializers.DictField(
        required=False,
        default=dict,
        help_text="clinical field name -> new value; fields left out keep their value",
    )
    complete = serializers.BooleanField(
        default=False, help_text="mark the section complete (false: save as draft)"
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="reason for change: required when the section is complete",
    )
    confirmations = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=dict,
        help_text="warning rule key -> reason the unusual value is right",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="field -> messages")
    warnings = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="warnings to confirm: rule key, fields, message",
    )
    stored_version = serializers.IntegerField(required=False)
    stored = serializers.DictField(required=False)


class DictionaryEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    section = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    required = serializers.CharField()
    codes = serializers.CharField()
    min = serializers.CharField()
    max = serializers.CharField()
    applies_when = serializers.CharField()
    rules = serializers.CharField()
    help_text = serializers.CharField()
    privacy = serializers.CharField()
    deidentified_export = serializers.CharField()


class FreezeSerializer(serializers.ModelSerializer):
    """A data freeze, without its rows (``download/`` gives them)."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    sites = serializers.ListField(
        source="site_codes", child=serializers.CharField(), help_text="the sites of its rows"
    )
    site = serializers.SerializerMethodField(
        help_text="the one site it was limited to; null: all its creator's sites"
    )

    class Meta:
        model = DataFreeze
        fields = [
            "name",
            "reason",
            "created_at",
            "created_by",
            "sites",
            "site",
            "date_from",
            "date_to",
            "n_patients",
            "sha256",
        ]

    date_from = serializers.SerializerMethodField(help_text="its first door date, or null")
    date_to = serializers.SerializerMethodField(help_text="its last door date, or null")

    def get_site(self, freeze) -> str | None:
        return freeze.filters.get("site")

    def get_date_from(self, freeze) -> str | None:
        return freeze.filters.get("from")

    def get_date_to(self, freeze) -> str | None:
        return freeze.filters.get("to")


class FreezeCreateSerializer(serializers.Serializer):
    """Freeze the data of your sites: checked by the freeze page's form."""

    name = serializers.CharField(help_text="letters, digits, hyphens and underscores; unique")
    reason = serializers.CharField(help_text="why the data are frozen (e.g. the manuscript)")
    site = serializers.CharField(
        required=False, help_text="one of your sites' codes; left out: all your sites"
    )
    date_from = serializers.DateField(
        required=False, help_text="first door date (YYYY-MM-DD); left out: from the first"
    )
    date_to = serializers.DateField(
        required=False, help_text="last door date (YYYY-MM-DD); left out: to the last"
    )


class ValueChangeSerializer(serializers.Serializer):
    study_id = serializers.CharField()
    column = serializers.CharField(help_text="the interchange column")
    before = serializers.CharField(help_text="the CSV text; empty: not recorded")
    after = serializers.CharField(help_text="the CSV text; empty: not recorded")


class FreezeComparisonSerializer(serializers.Serializer):
    """What differs from a freeze to the live data or another freeze."""

    before = serializers.CharField(help_text="the freeze's name")
    after = serializers.CharField(help_text="the other freeze's name, or live")
    n_differences = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField(), help_text="study IDs")
    removed = serializers.ListField(child=serializers.CharField(), help_text="study IDs")
    changes = ValueChangeSerializer(many=True)
