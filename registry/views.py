"""The nurse's screens. Views are thin: access check -> form -> service -> redirect.

Every queryset starts from ``registry.access``: another site's patient is absent
(404), a forbidden action is refused (403).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import NullBooleanField as NullBoolean
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from . import access, derived, rules, services
from .choices import SectionStatus
from .display import field_label, history_entries, label, words
from .forms import PatientFilterForm, PatientForm, form_value, section_form_class
from .models import (
    SECTION_MODELS,
    SECTIONS_BY_KEY,
    Patient,
    section_of_field,
)
from .workflow.services import exclusion_history, open_queries_by_field

PAGE_SIZE = 25
SECTION_KEYS = [model.key for model in SECTION_MODELS]
# Values of other sections shown (read-only) on a section's form, where the nurse checks
# a time against them: the groin puncture is not before the door time.
SHOWN_ON_FORM = {"procedure": ("door_time",)}
# The "Save and next section" button: saves (keeping the section's status) and opens the
# next section's form.
SAVE_AND_NEXT = "next"


def section_tabs() -> list[tuple[str, str]]:
    return [(model.key, capfirst(model._meta.verbose_name)) for model in SECTION_MODELS]


def home(request):
    return redirect("registry:patient_list")


def _patients(user):
    """Readable patients with their five sections joined (no per-patient queries)."""
    return _with_sections(access.patients_for(user))


def _with_sections(patients):
    return patients.select_related(
        "site", "lock", *SECTION_KEYS, *(f"{key}__completed_by" for key in SECTION_KEYS)
    )


def _readable_patient(user, pk) -> Patient:
    return get_object_or_404(_patients(user), pk=pk)


def section_statuses(patient: Patient) -> list[dict]:
    """Each section's status, who completed it and when (sections are pre-joined)."""
    rows = []
    for model in SECTION_MODELS:
        section = patient.sections()[model.key]
        rows.append(
            {
                "key": model.key,
                "title": capfirst(model._meta.verbose_name),
                "section": section,
                "status": section.status if section is not None else "",
                "complete": section is not None and section.status == SectionStatus.COMPLETE,
            }
        )
    return rows


def patient_list(request):
    user = request.user
    form = PatientFilterForm(request.GET or None, sites=access.sites_for(user))
    patients = access.patients_for(user)
    if form.is_valid():
        patients = form.filter(patients)
    # By site, then study ID: the order of the (site, study ID) index, so a page of any
    # site, or of several, is read from the index (one site's patients sort together).
    # The page's keys first, then its 25 patients with their sections: selected with
    # the joins, a late page would join every patient it skips.
    keys = patients.order_by("site_id", "study_id").values_list("pk", flat=True)
    page = Paginator(keys, PAGE_SIZE).get_page(request.GET.get("page"))
    found = _with_sections(patients).in_bulk(list(page.object_list))
    # A patient deleted between the two reads is left out rather than failing the page.
    rows = [{"patient": p, "sections": section_statuses(p)} for p in map(found.get, page) if p]
    return render(
        request,
        "registry/patient_list.html",
        {"form": form, "page": page, "rows": rows, "section_tabs": section_tabs()},
    )


def patient_create(request):
    access.require(access.has(request.user, access.EDIT_CLINICAL))
    sites = access.editable_sites_for(request.user)
    form = PatientForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(
                user=request.user, **form.clinical_data(), confirmations=form.confirmations()
            )
        except services.UnconfirmedWarnings as error:
            _show_warnings(form, error)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Patient %(id)s registered.") % {"id": patient.study_id})
            return redirect("registry:patient_detail", pk=patient.pk)
    return render(request, "registry/patient_form.html", {"form": form, "sites": sites})


def _timeline(patient: Patient) -> list[dict]:
    sections = patient.sections()

    def value(key, name):
        section = sections[key]
        return getattr(section, name) if section is not None else None

    return [
        {"label": _("Onset"), "when": value("admission", "onset_time")},
        {
            "label": _("Door"),
            "when": value("admission", "door_time"),
            "interval_label": _("onset to door"),
            "interval": patient.onset_to_door,
        },
        {
            "label": _("Groin puncture"),
            "when": value("procedure", "groin_puncture_time"),
            "interval_label": _("door to groin puncture"),
            "interval": patient.door_to_groin,
        },
        {
            "label": _("Procedure end"),
            "when": value("procedure", "procedure_end_time"),
            "interval_label": _("procedure time"),
            "interval": patient.procedure_duration,
        },
        {"label": _("Discharge"), "when": value("complications", "discharge_date")},
        {"label": _("3 months"), "when": value("followup", "followup_date")},
    ]


def _section_values(patient: Patient) -> list[dict]:
    """Every section's recorded values in words (branch fields that do not apply say so)."""
    flat = patient.flat_values()
    blocks = []
    for row in section_statuses(patient):
        model = SECTIONS_BY_KEY[row["key"]]
        values = []
        for name in model.clinical_fields():
            field = model._meta.get_field(name)
            if not rules.field_applies(name, flat) and flat.get(name) in (None, ""):
                shown = _("Not applicable")
            else:
                shown = words(field, flat.get(name))
            values.append({"label": label(field.verbose_name), "value": shown})
        blocks.append({**row, "values": values})
    return blocks


def patient_detail(request, pk):
    queryset = derived.annotate_derived(_patients(request.user), names=list(derived.intervals()))
    patient = get_object_or_404(queryset, pk=pk)
    return render(
        request,
        "registry/patient_detail.html",
        {
            "patient": patient,
            "timeline": _timeline(patient),
            "sections": _section_values(patient),
            "exclusions": exclusion_history(patient),
            "tab": "overview",
            "section_tabs": section_tabs(),
        },
    )


def patient_history(request, pk):
    patient = _readable_patient(request.user, pk)
    return render(
        request,
        "registry/patient_history.html",
        {
            "patient": patient,
            "entries": history_entries(patient),
            "tab": "history",
            "section_tabs": section_tabs(),
        },
    )


def _open_query_notes(request, patient, model) -> dict[str, str]:
    """The open data queries on this section's fields, rendered to sit under each field."""
    own = set(model.clinical_fields())
    return {
        name: render_to_string(
            "registry/workflow/_field_queries.html",
            {"patient": patient, "field_name": name, "queries": queries, "can_raise": False},
            request=request,
        )
        for name, queries in open_queries_by_field(patient).items()
        if name in own
    }


def section_edit(request, pk, section_key):
    model = SECTIONS_BY_KEY.get(section_key)
    if model is None:
        raise Http404
    patient = _readable_patient(request.user, pk)
    access.require(access.has(request.user, access.EDIT_CLINICAL))
    lock = services.lock_in_force(patient)
    if lock is not None and request.method == "POST":
        return _locked_page(request, patient, model, lock)
    instance = patient.sections()[section_key] or model(patient=patient)
    form_class = section_form_class(model)
    complete = _saves_complete(request.POST.get("action"), instance)
    notes = _open_query_notes(request, patient, model)
    if request.method == "POST":
        form = form_class(request.POST, instance=instance, complete=complete, field_notes=notes)
        if form.is_valid():
            try:
                services.section_save(
                    patient=patient,
                    section_key=section_key,
                    user=request.user,
                    data=form.clinical_data(),
                    complete=complete,
                    reason=form.cleaned_data.get("reason_for_change") or "",
                    expected_version=form.cleaned_data["version"],
                    confirmations=form.confirmations(),
                )
            except services.StaleVersion as error:
                form = _merged_form(request, patient, model, form, error, notes, complete)
            except services.UnconfirmedWarnings as error:
                _show_warnings(form, error)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                if complete:
                    note = _("%(section)s saved and marked complete.")
                else:
                    note = _("%(section)s saved as draft.")
                messages.success(request, note % {"section": capfirst(model._meta.verbose_name)})
                return _after_save(request, patient, section_key)
    else:
        form = form_class(instance=instance, field_notes=notes, read_only=lock is not None)
    return render(
        request,
        "registry/section_form.html",
        {
            "patient": patient,
            "form": form,
            "lock": lock,
            "section_title": capfirst(model._meta.verbose_name),
            "section_key": section_key,
            "status_row": {
                "section": None if form.adding else form.instance,
                "complete": form.stored_complete,
            },
            "stored_complete": form.stored_complete,
            "tab": section_key,
            "section_tabs": section_tabs(),
            "shown_values": _shown_values(patient, section_key),
            "next_section": _next_section(section_key),
        },
    )


def _saves_complete(action: str | None, instance) -> bool:
    """Whether the section is saved as complete: "Mark complete" does so, and "Save and
    next section" keeps a complete section complete (it never returns it to draft)."""
    if action == "complete":
        return True
    stored_complete = instance.pk is not None and instance.status == SectionStatus.COMPLETE
    return action == SAVE_AND_NEXT and stored_complete


def _next_section(section_key: str) -> str | None:
    index = SECTION_KEYS.index(section_key)
    return SECTION_KEYS[index + 1] if index + 1 < len(SECTION_KEYS) else None


def _after_save(request, patient, section_key):
    """The next section's form after "Save and next section", else the patient."""
    following = _next_section(section_key)
    if request.POST.get("action") == SAVE_AND_NEXT and following is not None:
        return redirect("registry:section_edit", pk=patient.pk, section_key=following)
    return redirect("registry:patient_detail", pk=patient.pk)


def _shown_values(patient, section_key: str) -> list[dict]:
    """``SHOWN_ON_FORM``'s values for this section's form, labelled and in words."""
    sections = patient.sections()
    shown = []
    for name in SHOWN_ON_FORM.get(section_key, ()):
        model = section_of_field(name)
        stored = sections[model.key]
        value = getattr(stored, name) if stored is not None else None
        shown.append(
            {
                "label": field_label(model, name),
                "value": words(model._meta.get_field(name), value),
                "section": capfirst(model._meta.verbose_name),
            }
        )
    return shown


def _merged_form(request, patient, model, form, error, notes, complete):
    """The form given back after a version conflict: the stored values where the user
    changed nothing, the user's where only they did, both side by side where both did."""
    values, both = services.section_conflict_merge(
        stored=error.stored, base=error.base, submitted=form.clinical_data()
    )
    data = request.POST.copy()
    for name, value in values.items():
        data.setlist(name, [form_value(form.fields[name], value)])
    data["version"] = str(error.stored_version)
    data["conflict_fields"] = ",".join(both)
    for name in both:
        data.pop(f"resolve_{name}", None)
    stored = model.objects.get(patient=patient)
    merged = section_form_class(model)(data, instance=stored, complete=complete, field_notes=notes)
    merged.is_valid()
    for name in both:
        merged.errors.pop(f"resolve_{name}", None)  # asked, not yet an error
    _add_errors(merged, error)
    return merged


def _locked_page(request, patient, model, lock):
    """A change sent to a locked record: the lock named, and what was typed, kept."""
    typed = []
    for name in model.clinical_fields():
        value = request.POST.get(name, "")
        if value:
            typed.append({"label": field_label(model, name), "value": value})
    return render(
        request,
        "registry/locked.html",
        {"patient": patient, "lock": lock, "typed": typed, "section_tabs": section_tabs()},
        status=403,
    )


def _show_warnings(form, error: services.UnconfirmedWarnings) -> None:
    """Each warning in a box next to its field, with the confirmation; nothing saved."""
    form.show_warnings(error.warnings)
    for name in form.warnings_shown:
        form.add_error(
            name,
            ValidationError(
                _("Unusual value: correct it, or confirm it below with a reason."),
                code="unconfirmed_warning",
            ),
        )


def _add_errors(form, error: ValidationError) -> None:
    """Attach a service's ValidationError to the form (unknown fields at the top)."""
    if hasattr(error, "error_dict"):
        for name, messages_ in error.error_dict.items():
            form.add_error(name if name in form.fields else None, messages_)
    else:
        form.add_error(None, error)


# --- Printing the case-report form ----------------------------------------------------


# A yes/no question of the blank CRF has no answer ticked, not even "Not recorded".
NO_ANSWER_TICKED = "unanswered"


def _printed_forms(sections: dict) -> list[dict]:
    """Every section's form, read-only, in CRF order; ``sections`` maps a key to the
    stored section or None (a blank form)."""
    printed = []
    for model in SECTION_MODELS:
        stored = sections.get(model.key)
        form_class = section_form_class(model)
        initial = {}
        if stored is None:
            flags = [n for n, f in form_class.base_fields.items() if isinstance(f, NullBoolean)]
            initial = dict.fromkeys(flags, NO_ANSWER_TICKED)
        form = form_class(
            instance=stored or model(), initial=initial, read_only=True, prefix=model.key
        )
        printed.append({"title": capfirst(model._meta.verbose_name), "form": form})
    return printed


def patient_print(request, pk):
    """All five sections of one patient on one page, to print (the paper CRF's copy)."""
    patient = _readable_patient(request.user, pk)
    context = {"patient": patient, "forms": _printed_forms(patient.sections()), "blank": False}
    return render(request, "registry/crf_print.html", context)


def blank_crf(request):
    """The five section forms empty, to print and fill by hand when no tablet is at hand."""
    return render(request, "registry/crf_print.html", {"forms": _printed_forms({}), "blank": True})
