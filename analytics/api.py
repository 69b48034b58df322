"""The study tables and the quality indicators on the REST API (``/api/v1/``).

The JSON of ``manage.py study_tables`` and ``manage.py quality_indicators`` (the
contracts in ``shared/spec/``), with the same filters, counted over the caller's sites
or, with ``freeze=NAME``, over the rows of a data freeze the caller may read (as
``--freeze NAME``). What every report reads from is decided once, in
:class:`ReportView` (the query's common parameters and :meth:`ReportView.source`).
"""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from registry import access
from registry.api.base import ApiView
from registry.api.serializers import ErrorSerializer
from registry.choices import Circulation
from registry.freezes import FreezeTampered
from registry.i18n import in_file_language

from .datasets import FOLLOWUP_WINDOW_CHOICES, Filters
from .freezing import readable_freeze
from .quality import PERIODS, quality_indicators
from .tables import P_METHODS, add_provenance, strip_internal, study_tables, validate_covariates


class ReportQuery(serializers.Serializer):
    """The parameters every report takes (the commands' ``--freeze``, ``--site``,
    ``--from``, ``--to``)."""

    freeze = serializers.CharField(
        required=False,
        help_text="a data freeze's name (/api/v1/freezes/): its rows, not the live data",
    )
    site = serializers.CharField(required=False, help_text="a site code (one of yours)")
    date_from = serializers.DateField(required=False, help_text="first door date")
    date_to = serializers.DateField(required=False, help_text="last door date")

    def to_internal_value(self, data):
        # ``from`` and ``to`` as in the commands (Python keywords, hence the renaming).
        renamed = {{"from": "date_from", "to": "date_to"}.get(k, k): v for k, v in data.items()}
        return super().to_internal_value(renamed)

    def validate(self, attrs):
        start, end = attrs.get("date_from"), attrs.get("date_to")
        if start and end and start > end:
            raise serializers.ValidationError({"to": _("The end date is before the start date.")})
        return attrs


class TablesQuery(ReportQuery):
    circulation = serializers.ChoiceField(choices=Circulation.values, required=False)
    p_method = serializers.ChoiceField(choices=P_METHODS, default="fisher")
    followup_window = serializers.ChoiceField(
        choices=FOLLOWUP_WINDOW_CHOICES, default="as_recorded"
    )
    covariates = serializers.CharField(
        required=False, help_text="regression covariates, comma separated (default: settings)"
    )

    def validate_covariates(self, value: str) -> list[str]:
        try:
            return validate_covariates([key for key in value.split(",") if key])
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class QualityQuery(ReportQuery):
    period = serializers.ChoiceField(choices=PERIODS, default="all")


def _parameters(query_class) -> list:

    names = {"date_from": "from", "date_to": "to"}
    return [
        OpenApiParameter(
            names.get(name, name), OpenApiTypes.STR, description=str(field.help_text or "")
        )
        for name, field in query_class().fields.items()
    ]


# 409: the data freeze named no longer matches its SHA-256.
REPORT_RESPONSES = {200: OpenApiTypes.OBJECT, 409: ErrorSerializer}


class ReportView(ApiView):
    """A report computed from the registry: the permission, the parameters, the source."""

    permission: str
    query_class: type[ReportQuery]

    def get(self, request):
        access.require(access.has(request.user, self.permission))
        query = self.query_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = dict(query.validated_data)
        site = options.get("site")
        if site and not access.sites_for(request.user).filter(code=site).exists():
            raise Http404  # another site's figures, as its patients, do not exist here
        filters = Filters(
            site=site,
            date_from=options.get("date_from"),
            date_to=options.get("date_to"),
            circulation=options.get("circulation"),
            followup_window=options.get("followup_window", "as_recorded"),
        )
        freeze = self.source(request, options.get("freeze"))
        try:
            with in_file_language():
                return Response(self.compute(request.user, freeze, filters, options))
        except FreezeTampered as exc:
            # The stored rows no longer match their hash: nothing is computed from them.
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)

    def source(self, request, freeze_name: str | None):
        """Whose rows are counted: the live registry as far as the caller may read it
        (None), or the data freeze named (404 unless the caller may read it)."""
        try:
            return readable_freeze(request.user, freeze_name)
        except Http404 as exc:
            raise Http404 from exc  # "Not found.", as another site's patient: no model's name

    def compute(self, user, freeze, filters: Filters, options: dict) -> dict:
        raise NotImplementedError


class StudyTables(ReportView):
    """The study's tables, as ``manage.py study_tables`` (shared/spec/study-tables-json.md)."""

    permission = access.VIEW_REPORTS
    query_class = TablesQuery

    @extend_schema(parameters=_parameters(TablesQuery), responses=REPORT_RESPONSES)
    def get(self, request):
        return super().get(request)

    def compute(self, user, freeze, filters, options):
        result = study_tables(
            user,
            filters,
            p_method=options["p_method"],
            covariates=options.get("covariates") or None,
            freeze=freeze,
        )
        return add_provenance(strip_internal(result), user, filters)


class QualityIndicators(ReportView):
    """The quality-of-care indicators, as ``manage.py quality_indicators``
    (shared/spec/quality-indicators.md)."""

    permission = access.VIEW_QUALITY
    query_class = QualityQuery

    @extend_schema(parameters=_parameters(QualityQuery), responses=REPORT_RESPONSES)
    def get(self, request):
        return super().get(request)

    def compute(self, user, freeze, filters, options):
        return quality_indicators(user, filters, period=options["period"], freeze=freeze)
