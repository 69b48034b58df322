"""Forms of the study workflow. Validation lives in the models and services;
these forms only collect the values."""

from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry import rules
from registry.choices import Sex
from registry.display import column_label
from registry.models import (
    ConsentBy,
    ContactOutcome,
    PatientExclusionReason,
    Respondent,
    ScreeningExclusion,
    Site,
    query_field_choices,
)

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
YES_NO = [("yes", _("Yes")), ("no", _("No"))]
BLANK = [("", "---------")]


def _date_field(label, **kwargs) -> forms.DateField:
    return forms.DateField(label=label, widget=DATE_WIDGET, **kwargs)


class ScreeningForm(forms.Form):
    site = forms.ModelChoiceField(label=_("Site"), queryset=None)
    screening_date = _date_field(_("Screening date"), initial=timezone.localdate)
    screening_number = forms.CharField(
        label=_("Screening log number"),
        max_length=32,
        required=False,
        help_text=_("The site's own log number; no names or hospital numbers."),
    )
    eligible = forms.TypedChoiceField(
        label=_("Eligible"),
        choices=YES_NO,
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    exclusion_reason = forms.ChoiceField(
        label=_("Exclusion reason (when not eligible)"),
        choices=BLANK + list(ScreeningExclusion.choices),
        required=False,
    )
    consent_given_by = forms.ChoiceField(
        label=_("Consent"), choices=BLANK + list(ConsentBy.choices), required=False
    )
    consent_date = _date_field(_("Consent date"), required=False)
    note = forms.CharField(
        label=_("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        if sites.count() == 1:
            self.fields["site"].initial = sites.first()


class EnrolForm(forms.Form):
    study_id = forms.RegexField(
        label=_("Study ID"), regex=rules.STUDY_ID_PATTERN, max_length=32, strip=True
    )
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, widget=forms.RadioSelect)
    age_years = forms.IntegerField(
        label=_("Age (years)"),
        min_value=rules.RANGES["age_years"][0],
        max_value=rules.RANGES["age_years"][1],
    )


class ContactAttemptForm(forms.Form):
    attempt_date = _date_field(_("Date"), initial=timezone.localdate)
    outcome = forms.ChoiceField(
        label=_("Outcome"), choices=ContactOutcome.choices, widget=forms.RadioSelect
    )
    note = forms.CharField(
        label=_("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    confirm_repeat = forms.BooleanField(
        label=_("Log another attempt with the same outcome on the same day"), required=False
    )


class ExclusionForm(forms.Form):
    """Nothing chosen in advance: excluding a patient is a decision, never one click."""

    reason = forms.ChoiceField(
        label=_("Reason"), choices=BLANK + list(PatientExclusionReason.choices)
    )
    excluded_on = _date_field(_("Date"))
    note = forms.CharField(
        label=_("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )


class QueryRaiseForm(forms.Form):
    field = forms.ChoiceField(label=_("Field"), choices=())
    text = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The nurse and the monitor read labels; the query stores the column.
        self.fields["field"].choices = [
            (name, column_label(name)) for name, _code in query_field_choices()
        ]


class QueryMessageForm(forms.Form):
    text = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 3}))


class InterviewFinishForm(forms.Form):
    """The last step of the questionnaire: who answered, when, and an optional override.

    The interview date has no default before the 3-month window opens (a date of
    today would then be an out-of-window assessment nobody chose)."""

    interview_date = _date_field(_("Interview date"))
    respondent = forms.ChoiceField(
        label=_("Who answered"), choices=Respondent.choices, widget=forms.RadioSelect
    )
    death_date = _date_field(_("Date of death"), required=False)
    override_score = forms.TypedChoiceField(
        label=_("Different score (only with a reason)"),
        choices=BLANK + [(str(i), str(i)) for i in range(7)],
        coerce=int,
        empty_value=None,
        required=False,
    )
    override_reason = forms.CharField(
        label=_("Reason for the different score"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
    )
    out_of_window_reason = forms.CharField(
        label=_("Reason for an assessment outside the 3-month window"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text=_("Only when the interview date is outside the window."),
    )
    warnings_reason = forms.CharField(
        label=_("I confirm the flagged values; reason"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text=_("Only when the registry flags a value as unusual."),
    )

    def __init__(self, *args, due=None, today=None, **kwargs):
        super().__init__(*args, **kwargs)
        today = today or timezone.localdate()
        if due is None or today >= due.window_start:
            self.fields["interview_date"].initial = today


class OutOfWindowForm(forms.Form):
    """Starting the questionnaire before the 3-month window opens needs a reason."""

    oow_reason = forms.CharField(
        label=_("Reason for assessing before the window"),
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class LockForm(forms.Form):
    """An electronic signature: the reason and the user's password again."""

    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}))
    password = forms.CharField(
        label=_("Your password (electronic signature)"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        strip=False,
    )


class ChecksFilterForm(forms.Form):
    """The checks page's filters and its position (a GET form; every field optional)."""

    site = forms.ModelChoiceField(
        label=_("Site"),
        queryset=Site.objects.none(),
        required=False,
        empty_label=_("All sites"),
        to_field_name="code",
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        required=False,
        choices=[
            ("", _("All kinds")),
            ("violation", _("Rule violations")),
            ("warning", _("Warnings")),
            ("missing", _("Missing values in completed sections")),
        ],
    )
    code = forms.ChoiceField(label=_("Rule"), required=False)
    # Where the page starts: a site code and the study ID after which to read.
    at = forms.CharField(required=False, max_length=32)
    after = forms.CharField(required=False, max_length=32)

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        codes = sorted({rule.code for rule in rules.RULES})
        self.fields["code"].choices = [("", _("All rules")), *((c, c) for c in codes)]
