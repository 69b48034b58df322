"""Case-report forms built from the models.

Ranges, codes and cross-field rules are not restated here: the model fields'
validators and ``Section.clean()`` (which runs ``rules.RULES``) produce the
messages, placed next to the field on this form.
"""

from __future__ import annotations

import datetime as dt

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Layout
from django import forms
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from . import rules
from .choices import MRS_LABELS, SectionStatus
from .display import MRS_FIELDS, NO, NOT_RECORDED, YES, label, lazy_label, words
from .models import SECTION_MODELS, Patient, Section, Site, patients_incomplete
from .services import REASON_MAX_LENGTH

# Radio values are what the widget renders for None/True/False, so the stored
# value is pre-checked and NullBooleanField reads the answer back.
FLAG_CHOICES = [("", NOT_RECORDED), ("True", YES), ("False", NO)]
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
DATE_FORMAT = "%Y-%m-%d"


def section_formfield(db_field: models.Field, **kwargs) -> forms.Field | None:
    """Form field for a model field: 3-way flags, native date and date-time pickers."""
    kwargs["label"] = lazy_label(db_field.verbose_name)
    if isinstance(db_field, models.BooleanField):
        return forms.NullBooleanField(
            label=kwargs["label"],
            help_text=db_field.help_text,
            required=False,
            widget=forms.RadioSelect(choices=FLAG_CHOICES),
        )
    if db_field.name in MRS_FIELDS:
        return mrs_formfield(db_field, label=kwargs["label"])
    if isinstance(db_field, models.DateTimeField):
        # Shown and read in the current (hospital) time zone, settings.TIME_ZONE.
        kwargs["widget"] = forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format=DATETIME_FORMAT
        )
    elif isinstance(db_field, models.DateField):
        kwargs["widget"] = forms.DateInput(attrs={"type": "date"}, format=DATE_FORMAT)
    elif db_field.name in rules.RANGES:
        # The browser's number input carries the range too (min and max), from the rules.
        kwargs["min_value"], kwargs["max_value"] = rules.RANGES[db_field.name]
    return db_field.formfield(**kwargs)


def mrs_formfield(db_field: models.Field, *, label) -> forms.TypedChoiceField:
    """An mRS field as a pick list of its grades in words (``choices.MRS_LABELS``), limited
    to the field's range (``rules.RANGES``: before the stroke a patient cannot be dead)."""
    low, high = rules.RANGES[db_field.name]
    grades = [(grade, MRS_LABELS[grade]) for grade in range(low, high + 1)]
    return forms.TypedChoiceField(
        label=label,
        help_text=db_field.help_text,
        required=not db_field.blank,
        choices=[("", NOT_RECORDED), *grades],
        coerce=int,
        empty_value=None,
    )


def form_value(field: forms.Field, value) -> str:
    """A Python value as the browser would submit it for ``field`` (to rebind a form)."""
    if value is None:
        return ""
    if isinstance(field, forms.NullBooleanField):
        return str(value)
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime(DATETIME_FORMAT)
    if isinstance(value, dt.date):
        return value.strftime(DATE_FORMAT)
    return str(value)


def _blank_choice_reads_not_recorded(form: forms.Form) -> None:
    for field in form.fields.values():
        if isinstance(field, forms.ChoiceField) and not isinstance(field.widget, forms.RadioSelect):
            choices = list(field.choices)
            if choices and choices[0][0] == "":
                field.choices = [("", NOT_RECORDED), *choices[1:]]


def branch_value(branch: rules.Branch) -> str:
    """The controller's values as the browser submits them (see FLAG_CHOICES), separated
    by spaces (static/registry/branching.js)."""
    return " ".join(str(value) for value in branch.values)


KEEP_STORED, KEEP_MINE = "stored", "mine"


class WarningConfirmationFields:
    """``confirm_<rule key>`` and ``..._reason`` for each warning rule touching the
    form's fields (``registry.rules``); shown next to the field only while the warning
    is raised (``show_warnings``, after the service refused the save)."""

    def _add_warning_fields(self, own: set[str]) -> None:
        self.warning_own = own
        self.warning_rules = rules.rules_touching(frozenset(own), rules.WARNING)
        self.warnings_shown: dict[str, list[dict]] = {}
        for rule in self.warning_rules:
            self.fields[f"confirm_{rule.key}"] = forms.BooleanField(
                label=_("I confirm this value"), required=False
            )
            self.fields[f"confirm_{rule.key}_reason"] = forms.CharField(
                label=_("Reason"), max_length=500, required=False
            )

    def show_warnings(self, raised) -> None:
        """Show ``raised`` warning rules next to their fields, with the confirmation."""
        for rule in raised:
            name = next(n for n in rule.fields if n in self.warning_own)
            self.warnings_shown.setdefault(name, []).append(
                {
                    "message": rule.message,
                    "confirm": self[f"confirm_{rule.key}"],
                    "reason": self[f"confirm_{rule.key}_reason"],
                }
            )

    def confirmations(self) -> dict[str, str]:
        """Reasons of the ticked confirmations, by rule key (empty reason if none typed)."""
        found = {}
        for rule in self.warning_rules:
            if self.cleaned_data.get(f"confirm_{rule.key}"):
                found[rule.key] = self.cleaned_data.get(f"confirm_{rule.key}_reason") or ""
        return found


def field_extras(name: str) -> HTML:
    """Where a field's warnings and conflict show (known once the service answered)."""
    return HTML(f'{{% include "registry/_field_extras.html" with field_name="{name}" %}}')


class SectionForm(WarningConfirmationFields, forms.ModelForm):
    """Base of the per-section forms; see ``section_form_class``.

    Besides the clinical fields: ``confirm_<rule key>`` and ``..._reason`` for each
    warning rule touching the section (shown only while the warning is raised, see
    ``show_warnings``); after a version conflict, ``conflict_fields`` and a required
    ``resolve_<field>`` choice for each field both users changed; ``read_only`` for a
    locked record (every field disabled).
    """

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    conflict_fields = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, complete: bool = False, field_notes=None, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        # Rendered HTML shown right under a field (the open data queries on it).
        self.field_notes = field_notes or {}
        self.read_only = read_only
        model = self._meta.model
        self.adding = self.instance._state.adding
        self.stored_complete = not self.adding and self.instance.status == SectionStatus.COMPLETE
        self.fields["version"].initial = 0 if self.adding else self.instance.version
        if self.stored_complete:
            self.fields["reason_for_change"] = forms.CharField(
                label=_("Reason for change"),
                max_length=REASON_MAX_LENGTH,
                required=False,
                help_text=_(
                    "This section is complete. Any change needs a short reason, kept in "
                    "the audit trail."
                ),
            )
        if self.is_bound:
            # Validate completeness when the nurse pressed "Mark complete".
            self.instance.status = SectionStatus.COMPLETE if complete else SectionStatus.DRAFT
        _blank_choice_reads_not_recorded(self)
        self._add_branch_notes(model)
        self._add_warning_fields(set(model.clinical_fields()))
        self._add_conflict_fields(model)
        if read_only:
            for field in self.fields.values():
                field.disabled = True
        self.helper = self._helper(model)

    # --- version conflicts: the stored value or mine, chosen explicitly ------------

    def _add_conflict_fields(self, model) -> None:
        names = (self.data.get("conflict_fields") or "") if self.is_bound else ""
        own = set(model.clinical_fields())
        self.conflicts = [n for n in names.split(",") if n in own]
        # The stored values, read before validation copies the form's into the instance.
        self.conflict_stored = {n: getattr(self.instance, n) for n in self.conflicts}
        for name in self.conflicts:
            self.fields[f"resolve_{name}"] = forms.ChoiceField(
                label=_("Which value to keep"),
                choices=[
                    (KEEP_STORED, _("Keep the stored value")),
                    (KEEP_MINE, _("Keep my value")),
                ],
                widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
                error_messages={"required": _("Choose the stored value or yours.")},
            )

    @cached_property
    def conflict_rows(self) -> dict[str, dict]:
        """For each field both users changed: the stored value and the user's, in words."""
        rows = {}
        for name in self.conflicts:
            field = self._meta.model._meta.get_field(name)
            mine = self[name].field.to_python(self[name].value()) if self.is_bound else None
            rows[name] = {
                "stored": words(field, self.conflict_stored[name]),
                "mine": words(field, mine),
                "choice": self[f"resolve_{name}"],
            }
        return rows

    def _branches(self, model) -> dict[str, rules.Branch]:
        """Exclusive branches whose controller is on this same form."""
        own = set(model.clinical_fields())
        return {
            name: branch
            for name, branch in rules.BRANCHING.items()
            if name in own and branch.exclusive and branch.controller in own
        }

    def _add_branch_notes(self, model) -> None:
        for name, branch in self._branches(model).items():
            controller = model._meta.get_field(branch.controller)
            note = _("Fill only if %(controller)s = %(value)s.") % {
                "controller": label(controller.verbose_name),
                "value": " / ".join(words(controller, value) for value in branch.values),
            }
            field = self.fields[name]
            field.help_text = f"{note} {field.help_text}".strip()

    def _helper(self, model) -> FormHelper:
        helper = FormHelper()
        helper.form_tag = False
        helper.disable_csrf = True
        branches = self._branches(model)
        items = []
        for name in model.clinical_fields():
            if name in branches:
                items.append(
                    Div(
                        Field(name),
                        css_class="registry-branch",
                        data_branch_controller=branches[name].controller,
                        data_branch_value=branch_value(branches[name]),
                    )
                )
            else:
                items.append(Field(name))
            if name in self.field_notes:
                items.append(HTML(self.field_notes[name]))
            # Warnings and conflicts are known only once the service has answered.
            items.append(
                HTML(f'{{% include "registry/_field_extras.html" with field_name="{name}" %}}')
            )
        items.append(Field("version"))
        items.append(Field("conflict_fields"))
        if "reason_for_change" in self.fields:
            items.append(Field("reason_for_change", wrapper_class="registry-reason"))
        helper.layout = Layout(*items)
        return helper

    def clean(self):
        cleaned = super().clean()
        for name in self.conflicts:
            if cleaned.get(f"resolve_{name}") == KEEP_STORED:
                cleaned[name] = self.conflict_stored[name]
        # The picker shows minutes only: a stored time with seconds comes back truncated.
        # Keep the stored value then, so an untouched field is not a change.
        if not self.adding:
            for name, field in self.fields.items():
                stored = getattr(self.instance, name, None)
                if (
                    isinstance(field, forms.DateTimeField)
                    and stored is not None
                    and cleaned.get(name) == stored.replace(second=0, microsecond=0)
                ):
                    cleaned[name] = stored
        return cleaned

    def clinical_data(self) -> dict[str, object]:
        return {name: self.cleaned_data.get(name) for name in self._meta.model.clinical_fields()}


_FORM_CLASSES: dict[str, type[SectionForm]] = {}


def section_form_class(model: type[Section]) -> type[SectionForm]:
    if model.key not in _FORM_CLASSES:
        _FORM_CLASSES[model.key] = forms.modelform_factory(
            model,
            form=SectionForm,
            fields=model.clinical_fields(),
            formfield_callback=section_formfield,
        )
    return _FORM_CLASSES[model.key]


for _model in SECTION_MODELS:
    section_form_class(_model)


class PatientForm(WarningConfirmationFields, forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["study_id", "site", "sex", "age_years"]

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["site"].empty_label = None if len(sites) == 1 else _("Choose a site")
        low, high = rules.RANGES["age_years"]
        self.fields["age_years"].widget.attrs.update(min=low, max=high)
        self._add_warning_fields({"study_id", "sex", "age_years"})
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout(
            *(item for name in self.Meta.fields for item in (Field(name), field_extras(name)))
        )

    def clinical_data(self) -> dict[str, object]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class PatientFilterForm(forms.Form):
    """The patient list's search and filters (a GET form)."""

    INCOMPLETE_ANY = "any"

    q = forms.CharField(label=_("Study ID"), required=False, max_length=32)
    site = forms.ModelChoiceField(
        label=_("Site"), queryset=Site.objects.none(), required=False, empty_label=_("All sites")
    )
    incomplete = forms.ChoiceField(label=_("Section incomplete"), required=False)

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["incomplete"].choices = [
            ("", _("Any status")),
            (self.INCOMPLETE_ANY, _("Any section incomplete")),
            *((m.key, capfirst(m._meta.verbose_name)) for m in SECTION_MODELS),
        ]

    def filter(self, patients):
        """``patients`` narrowed by the valid form's search and filters (the patient
        list page's and the API's)."""
        data = self.cleaned_data
        if data["q"]:
            patients = patients.filter(study_id__icontains=data["q"].strip())
        if data["site"]:
            patients = patients.filter(site=data["site"])
        incomplete = data["incomplete"]
        if incomplete:
            keys = (
                [m.key for m in SECTION_MODELS]
                if incomplete == self.INCOMPLETE_ANY
                else [incomplete]
            )
            patients = patients_incomplete(patients, keys)
        return patients


class FreezeForm(forms.Form):
    """Freeze the data: a name, a reason and, optionally, one of the user's sites and a
    range of door dates."""

    name = forms.SlugField(
        label=pgettext_lazy("object name", "Name"),
        max_length=80,
        help_text=_("Letters, digits, hyphens and underscores, e.g. manuscript-2026-12."),
    )
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}))
    site = forms.ModelChoiceField(
        label=_("Site"), queryset=Site.objects.none(), required=False, empty_label=_("All my sites")
    )
    date_from = forms.DateField(
        label=_("First door date"),
        required=False,
        help_text=_("Only patients who arrived on or after this day (empty: from the first)."),
    )
    date_to = forms.DateField(
        label=_("Last door date"),
        required=False,
        help_text=_("Only patients who arrived on or before this day (empty: to the last)."),
    )

    def __init__(self, *args, sites=None, **kwargs):
        super().__init__(*args, **kwargs)
        if sites is not None:
            self.fields["site"].queryset = sites


class FreezeDeleteForm(forms.Form):
    """Why a freeze is deleted (kept in the audit row)."""

    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}))
