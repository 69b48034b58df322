"""The API's endpoints. Thin, like the pages: access check (``registry.access``) ->
the page's form (its validation) -> the service -> JSON.

Every endpoint derives from ``base.ApiView`` (or ``base.ApiListView``), which sets who
may call it, asks ``access.USE_API`` and logs each request.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, StreamingHttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions, pagination, status
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.response import Response

from registry import access, freezes, services
from registry.forms import FreezeForm, PatientFilterForm, form_value, section_form_class
from registry.interchange import dictionary
from registry.models import SECTIONS_BY_KEY, Patient
from registry.sessions import send_to_sign_in

from . import serializers as s
from .base import ApiListView, ApiView, LoggedRequests

SECTION_KEYS = list(SECTIONS_BY_KEY)


class SiteList(ApiListView):
    """The sites whose records you may read."""

    serializer_class = s.SiteSerializer
    pagination_class = None

    def get_queryset(self):
        return access.sites_for(self.request.user).order_by("code")


class PatientCursor(pagination.CursorPagination):
    """Pages of patients in the order of their key: a page stays the same while
    patients are added, and a late page is read from the index like the first."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


PATIENT_FILTERS = [
    OpenApiParameter("q", str, description="part of the study ID"),
    OpenApiParameter("site", int, description="a site's id (see /api/v1/sites/)"),
    OpenApiParameter(
        "incomplete", str, description="a section key, or 'any': patients with it incomplete"
    ),
]


FILTER_NAMES = ("q", "site", "incomplete")


def _with_sections(patients):
    return patients.select_related("site", "lock", *SECTION_KEYS)


class PatientList(ApiListView):
    """Your sites' patients, with the patient list page's search and filters."""

    serializer_class = s.PatientSerializer
    pagination_class = PatientCursor

    @extend_schema(parameters=PATIENT_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        user = self.request.user
        params = {k: v for k, v in self.request.query_params.items() if k in FILTER_NAMES}
        form = PatientFilterForm(params, sites=access.sites_for(user))
        if not form.is_valid():
            raise exceptions.ValidationError({"errors": form.errors})
        return form.filter(access.patients_for(user))

    def paginate_queryset(self, queryset):
        """The page's patients first, then those with their sections: joined before the
        cursor's condition, PostgreSQL would read every section up to the page."""
        page = super().paginate_queryset(queryset)
        found = _with_sections(Patient.objects.all()).in_bulk([patient.pk for patient in page])
        # A patient deleted between the two reads is left out rather than failing.
        return [found[patient.pk] for patient in page if patient.pk in found]


class PatientDetail(ApiView):
    """One patient: identity, lock and each section's status and version."""

    @extend_schema(responses=s.PatientSerializer)
    def get(self, request, pk: int):
        patient = _readable(request.user, pk)
        return Response(s.PatientSerializer(patient).data)


def _readable(user, pk):
    try:
        return _with_sections(access.patients_for(user)).get(pk=pk)
    except (ValueError, Patient.DoesNotExist) as exc:
        raise Http404 from exc


class SectionDetail(ApiView):
    """One section of the case-report form: read it; change it as the form does (its
    rules and warnings, the reason for change of a complete section, the version read,
    the record's lock)."""

    @extend_schema(operation_id="section_retrieve", responses=s.SectionSerializer)
    def get(self, request, pk: int, section_key: str):
        patient = _readable(request.user, pk)
        locked = services.lock_in_force(patient) is not None
        return Response(s.SectionSerializer.of(patient, section_key, locked))

    @extend_schema(
        operation_id="section_update",
        request=s.SectionWriteSerializer,
        responses={
            200: s.SectionSerializer,
            400: s.ErrorSerializer,
            403: s.ErrorSerializer,
            409: s.ErrorSerializer,
        },
    )
    def patch(self, request, pk: int, section_key: str):
        patient = _readable(request.user, pk)
        access.require(access.has(request.user, access.EDIT_CLINICAL))
        lock = services.lock_in_force(patient)
        if lock is not None:
            return _locked(patient)
        change = s.SectionWriteSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        return _section_save(request, patient, section_key, change.validated_data)


def _locked(patient) -> Response:
    try:
        services.ensure_unlocked(patient)
    except services.RecordLocked as error:
        return Response({"detail": str(error.args[0])}, status=status.HTTP_403_FORBIDDEN)
    return Response({"detail": _("The record is locked.")}, status=status.HTTP_403_FORBIDDEN)


def _form_data(form_class, instance, change: dict) -> dict:
    """What the section's form would receive from the browser: the values sent, the
    stored ones for fields left out, the version, the reason and the confirmations."""
    data = {}
    for name, field in form_class.base_fields.items():
        if name in change["values"]:
            data[name] = _as_typed(change["values"][name])
        elif name in instance.clinical_fields():
            data[name] = form_value(field, getattr(instance, name))
    data["version"] = str(change["version"])
    data["reason_for_change"] = change["reason"]
    for key, reason in change["confirmations"].items():
        data[f"confirm_{key}"] = "on"
        data[f"confirm_{key}_reason"] = reason
    return data


def _as_typed(value) -> str:
    if value is None:
        return ""
    return str(value)  # True/False as the radio buttons send them


def _section_save(request, patient, section_key: str, change: dict) -> Response:
    model = SECTIONS_BY_KEY[section_key]
    unknown = sorted(set(change["values"]) - set(model.clinical_fields()))
    if unknown:
        message = _("Not fields of this section: %(names)s.") % {"names": ", ".join(unknown)}
        return Response({"detail": message, "errors": {"values": [message]}}, status=400)
    instance = patient.sections()[section_key] or model(patient=patient)
    form_class = section_form_class(model)
    data = _form_data(form_class, instance, change)
    form = form_class(data, instance=instance, complete=change["complete"])
    if not form.is_valid():
        return _invalid(form.errors)
    try:
        services.section_save(
            patient=patient,
            section_key=section_key,
            user=request.user,
            data=form.clinical_data(),
            complete=change["complete"],
            reason=change["reason"],
            expected_version=change["version"],
            confirmations=form.confirmations(),
        )
    except services.StaleVersion as error:
        return _stale(error)
    except services.UnconfirmedWarnings as error:
        return _unconfirmed(error)
    except ValidationError as error:
        return _invalid(error.message_dict if hasattr(error, "error_dict") else error.messages)
    saved = _readable(request.user, patient.pk)
    return Response(s.SectionSerializer.of(saved, section_key, locked=False))


def _invalid(errors) -> Response:
    if not isinstance(errors, dict):
        errors = {"__all__": list(errors)}
    return Response(
        {"detail": _("The section was not saved: correct the values."), "errors": errors},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _stale(error: services.StaleVersion) -> Response:
    return Response(
        {
            "detail": _(
                "This section was changed by someone else: it is now version %(version)d. "
                "Read it again and send your change with that version."
            )
            % {"version": error.stored_version},
            "stored_version": error.stored_version,
            "stored": {k: s.json_value(v) for k, v in error.stored.items()},
        },
        status=status.HTTP_409_CONFLICT,
    )


def _unconfirmed(error: services.UnconfirmedWarnings) -> Response:
    return Response(
        {
            "detail": _(
                "Unusual values: correct them, or confirm each warning with a reason "
                "(confirmations: rule key -> reason)."
            ),
            "warnings": [
                {"rule": rule.key, "fields": list(rule.fields), "message": str(rule.message)}
                for rule in error.warnings
            ],
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


class DataDictionary(ApiView):
    """Every interchange column: its section, label, type, codes, range and rules."""

    @extend_schema(responses=s.DictionaryEntrySerializer(many=True))
    def get(self, request):
        return Response([entry.__dict__ for entry in dictionary.entries()])


class FreezeList(ApiView):
    """The data freezes you may read, newest first; POST freezes the data of your sites
    (or of one of them), as the freezes' page does."""

    @extend_schema(operation_id="freezes_list", responses=s.FreezeSerializer(many=True))
    def get(self, request):
        access.require(access.has(request.user, access.FREEZE))
        found = freezes.freezes_for(request.user).select_related("created_by")
        return Response(s.FreezeSerializer(found, many=True).data)

    @extend_schema(
        operation_id="freeze_create",
        request=s.FreezeCreateSerializer,
        responses={201: s.FreezeSerializer, 400: s.ErrorSerializer, 403: s.ErrorSerializer},
    )
    def post(self, request):
        access.require(access.has(request.user, access.FREEZE))
        asked = s.FreezeCreateSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        form = FreezeForm(asked.validated_data, sites=access.sites_for(request.user))
        form.fields["site"].to_field_name = "code"  # the API names sites by their code
        if not form.is_valid():
            return _not_frozen(form.errors)
        try:
            freeze = freezes.freeze_create(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            return _not_frozen(error.message_dict)
        return Response(s.FreezeSerializer(freeze).data, status=status.HTTP_201_CREATED)


def _not_frozen(errors) -> Response:
    return Response(
        {"detail": _("The data were not frozen: correct the values."), "errors": errors},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _freeze(user, name: str):
    """The freeze ``name`` if ``user`` may read it (``access.get_freeze``: 404, 403)."""
    try:
        return access.get_freeze(user, name)
    except Http404 as exc:
        raise Http404 from exc  # "Not found.", as another site's patient: no model's name


def _tampered(error: freezes.FreezeTampered) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


class FreezeDetail(ApiView):
    """One data freeze: its reason, time, sites, number of patients and SHA-256."""

    @extend_schema(operation_id="freeze_retrieve", responses=s.FreezeSerializer)
    def get(self, request, name: str):
        return Response(s.FreezeSerializer(_freeze(request.user, name)).data)


class FreezeDownload(ApiView):
    """The frozen rows: exactly the interchange CSV whose SHA-256 the freeze keeps
    (also in the ``X-Freeze-SHA256`` header); 409 if they no longer match it."""

    @extend_schema(
        operation_id="freeze_download",
        responses={(200, "text/csv"): OpenApiTypes.BINARY, 409: s.ErrorSerializer},
    )
    def get(self, request, name: str):
        freeze = _freeze(request.user, name)
        try:
            pieces = freezes.freeze_csv(freeze=freeze)
        except freezes.FreezeTampered as error:
            return _tampered(error)
        response = StreamingHttpResponse(pieces, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="freeze-{freeze.name}.csv"'
        response["X-Freeze-SHA256"] = freeze.sha256
        return response


class FreezeCompare(ApiView):
    """What differs from a freeze to the live data of its scope (``with=live``, the
    default) or to another freeze (``with=NAME``): patients added, removed, and each
    changed value."""

    @extend_schema(
        operation_id="freeze_compare",
        parameters=[OpenApiParameter("with", str, description="live, or another freeze's name")],
        responses={200: s.FreezeComparisonSerializer, 409: s.ErrorSerializer},
    )
    def get(self, request, name: str):
        freeze = _freeze(request.user, name)
        with_name = request.query_params.get("with", "live")
        other = None if with_name == "live" else _freeze(request.user, with_name)
        try:
            comparison = freezes.freeze_compare(freeze=freeze, other=other, user=request.user)
        except freezes.FreezeTampered as error:
            return _tampered(error)
        data = s.FreezeComparisonSerializer(comparison).data
        data["after"] = with_name  # "live" whatever the language of the pages
        return Response(data)


class Schema(LoggedRequests, SpectacularAPIView):
    """The OpenAPI 3 schema of the API."""

    authentication_classes = ApiView.authentication_classes
    permission_classes = ApiView.permission_classes


class SchemaDocs(LoggedRequests, SpectacularSwaggerSplitView):
    """The schema as a page to read and try (Swagger UI, served by the registry)."""

    authentication_classes = ApiView.authentication_classes
    permission_classes = ApiView.permission_classes
    url_name = "api:schema"

    def handle_exception(self, exc):
        # A page for people: someone not signed in goes to the sign-in page and back.
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            return send_to_sign_in(self.request)
        return super().handle_exception(exc)
