"""Forms of the account pages: an account's names, role and sites; a reason; passwords;
one's own API tokens."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry import access
from registry.choices import Language
from registry.models import User

from .services import PASSWORD_CHANGED


class AccountForm(forms.Form):
    """Names, role and sites; with ``creating``, the username and a one-off password."""

    username = forms.CharField(label=_("Username"), max_length=150)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    role = forms.ChoiceField(label=_("Role"))
    sites = forms.ModelMultipleChoiceField(
        label=_("Sites"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The account sees the patients of these sites only."),
    )
    password1 = forms.CharField(
        label=_("One-off password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Hand it over in person; the user changes it after signing in."),
    )
    password2 = forms.CharField(
        label=_("The same password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, by, account: User | None = None, **kwargs):
        self.account = account
        if account is not None:
            kwargs.setdefault(
                "initial",
                {
                    "first_name": account.first_name,
                    "last_name": account.last_name,
                    "email": account.email,
                    "role": account.role,
                    "sites": list(account.sites.all()),
                },
            )
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r.value, r.label) for r in access.roles_grantable_by(by)]
        self.fields["sites"].queryset = access.sites_for(by)
        if account is not None:
            for name in ("username", "password1", "password2"):
                del self.fields[name]
            if account.pk == by.pk:  # one's own role and sites: another administrator's
                for name in ("role", "sites"):
                    self.fields[name].disabled = True
                self.fields["role"].choices = [(account.role, account.get_role_display())]
                self.fields["sites"].queryset = account.sites.all()

    def clean_password2(self):
        first, second = self.cleaned_data.get("password1"), self.cleaned_data.get("password2")
        if first and second and first != second:
            raise forms.ValidationError(_("The two passwords differ."))
        if second:
            user = User(username=self.cleaned_data.get("username", ""))
            password_validation.validate_password(second, user)
        return second

    def service_data(self) -> dict:
        """The cleaned values as the account services take them."""
        data = dict(self.cleaned_data)
        data.pop("password2", None)
        if "password1" in data:
            data["password"] = data.pop("password1")
        data["sites"] = list(data["sites"])
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (kept in the account's history)"), max_length=80, required=True
    )


class OwnPasswordChangeForm(PasswordChangeForm):
    """Django's own password change; the account's history notes it (not the hash)."""

    def save(self, commit=True):
        self.user._change_reason = PASSWORD_CHANGED
        self.user._history_user = self.user
        return super().save(commit)


class ProfileForm(forms.Form):
    """One's own preferences: the language of the pages."""

    language = forms.ChoiceField(
        label=_("Language of the pages"),
        required=False,
        help_text=_("The registry's default is used until you choose one."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        default = dict(Language.choices).get(settings.LANGUAGE_CODE, settings.LANGUAGE_CODE)
        self.fields["language"].choices = [
            ("", _("The registry's default (%(language)s)") % {"language": default}),
            *Language.choices,
        ]


class ApiTokenForm(forms.Form):
    """A new API token of one's own: a name, the last day it works, read-only or not."""

    name = forms.CharField(
        label=_("Token name"),
        max_length=80,
        help_text=_("What the token is for, e.g. the program that uses it."),
    )
    expires_on = forms.DateField(
        label=_("Valid until"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("The token stops working at the end of this day."),
    )
    read_only = forms.BooleanField(
        label=_("Read-only"),
        required=False,
        initial=True,
        help_text=_("A read-only token can read but never change the registry."),
    )

    def expires_at(self):
        """The end of the chosen day, in the registry's time zone."""
        day = self.cleaned_data["expires_on"] + dt.timedelta(days=1)
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
