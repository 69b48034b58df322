"""The report's filters (GET): every table and figure is recomputed from them."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from registry import access
from registry.choices import Circulation

from . import exposures as ex
from .datasets import Filters
from .tables import default_covariates


class CovariatesField(forms.MultipleChoiceField):
    """The regression's covariates: any key reaches ``clean_covariates``, which says
    why a key is refused (the outcome, or unknown) instead of Django's generic
    "not one of the available choices"."""

    def valid_value(self, value) -> bool:
        return True


class ReportFilterForm(forms.Form):
    site = forms.ChoiceField(label=_("Site"), required=False)
    date_from = forms.DateField(
        label=_("Door date from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Door date to"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    circulation = forms.ChoiceField(
        label=_("Circulation"),
        required=False,
        choices=[("", _("Both"))] + list(Circulation.choices),
    )
    p_method = forms.ChoiceField(
        label=_("p-value"),
        required=False,
        choices=[
            ("fisher", _("Fisher's exact test")),
            ("wald", _("Wald test of ln RR (as the paper)")),
        ],
    )
    followup_window = forms.ChoiceField(
        label=_("3-month mRS outside the window"),
        required=False,
        choices=[
            ("as_recorded", _("Counted (as the study did)")),
            ("strict", _("Missing (sensitivity analysis)")),
        ],
    )
    covariates = CovariatesField(
        label=_("Regression covariates"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name != "covariates":
                css = "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
                field.widget.attrs["class"] = css
        # Only the user's own sites can be chosen (access decides which).
        sites = access.sites_for(user).values_list("code", "name")
        self.fields["site"].choices = [("", _("All my sites"))] + [
            (code, f"{code} - {name}") for code, name in sites
        ]
        self.fields["covariates"].initial = default_covariates()
        self.fields["p_method"].initial = "fisher"
        self.fields["covariates"].choices = [(key, ex.label(key)) for key in ex.REGRESSION_CHOICES]

    def clean_covariates(self) -> list[str]:
        keys = self.cleaned_data.get("covariates") or []
        outcome = [k for k in keys if k in ex.OUTCOME_DERIVED]
        if outcome:
            raise forms.ValidationError(
                _(
                    "Covariate %(names)s refused: the outcome (poor outcome at 3 months) and "
                    "the values derived from the 3-month mRS cannot be covariates."
                ),
                params={"names": ", ".join(outcome)},
            )
        unknown = [k for k in keys if k not in ex.REGRESSION_CHOICES]
        if unknown:
            raise forms.ValidationError(
                _("Unknown covariate: %(names)s."), params={"names": ", ".join(unknown)}
            )
        return keys

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return data

    def refused(self) -> bool:
        """Sent with an invalid value (e.g. the end date before the start date)."""
        return self.is_bound and not self.is_valid()

    def options(self) -> tuple[Filters, str, list[str]]:
        """(filters, p-method, covariates) of a valid form; defaults otherwise."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        filters = Filters(
            site=data.get("site") or None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            circulation=data.get("circulation") or None,
            followup_window=data.get("followup_window") or "as_recorded",
        )
        covariates = list(data.get("covariates") or default_covariates())
        return filters, data.get("p_method") or "fisher", covariates


def form_for(request) -> ReportFilterForm:
    bound = any(name in request.GET for name in ReportFilterForm.base_fields)
    return ReportFilterForm(request.GET if bound else None, user=request.user)
