"""Account pages of the registry: site administrators manage their own sites' accounts.

Thin: access check -> form -> service -> redirect. Only the accounts of the user's
sites exist here (another site's account answers 404); changing one needs
``access.may_change_account`` (403 otherwise). The Django admin stays the registry
administrator's.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import access
from registry.api import services as api_services

from . import services
from .forms import AccountForm, ApiTokenForm, OwnPasswordChangeForm, ProfileForm, ReasonForm

# A new token's expiry offered on the form (its owner may choose up to API_TOKEN_MAX_DAYS).
API_TOKEN_DEFAULT_DAYS = 90


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


@require_GET
def account_list(request):
    access.require(access.has(request.user, access.MANAGE_USERS))
    accounts = access.users_for(request.user).prefetch_related("sites").order_by("username")
    rows = [
        {"account": account, "may_change": access.may_change_account(request.user, account)}
        for account in accounts
    ]
    return render(
        request,
        "registry/accounts/list.html",
        {"rows": rows, "may_audit": access.has(request.user, access.AUDIT)},
    )


@require_http_methods(["GET", "POST"])
def account_create(request):
    access.require(access.has(request.user, access.MANAGE_USERS))
    form = AccountForm(request.POST or None, by=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            account = services.account_create(by=request.user, **form.service_data())
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Account %(name)s created.") % {"name": account.username})
            return redirect("registry:account_edit", pk=account.pk)
    return render(request, "registry/accounts/form.html", {"form": form, "account": None})


@require_http_methods(["GET", "POST"])
def account_edit(request, pk):
    account = access.get_account(request.user, pk)
    may_change = access.may_change_account(request.user, account)
    access.require(may_change or account.pk == request.user.pk)
    form = AccountForm(request.POST or None, by=request.user, account=account)
    if request.method == "POST" and form.is_valid():
        data = form.service_data()
        try:
            services.account_update(by=request.user, account=account, **data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Account %(name)s saved.") % {"name": account.username})
            return redirect("registry:account_edit", pk=account.pk)
    context = {
        "form": form,
        "account": account,
        "reason_form": ReasonForm(),
        "may_change": may_change and account.pk != request.user.pk,
    }
    return render(request, "registry/accounts/form.html", context)


@require_http_methods(["GET", "POST"])
def account_active(request, pk):
    """Deactivate (or reactivate) an account, with a reason kept in its history (the
    form is on the account's page, where a GET goes back to)."""
    account = access.get_account(request.user, pk)
    access.require(access.may_change_account(request.user, account))
    if request.method == "GET":
        return redirect("registry:account_edit", pk=account.pk)
    form = ReasonForm(request.POST)
    activate = request.POST.get("action") == "reactivate"
    change = services.account_reactivate if activate else services.account_deactivate
    try:
        if not form.is_valid():
            raise ValidationError(_("Give the reason."))
        change(by=request.user, account=account, reason=form.cleaned_data["reason"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        done = _("%(name)s reactivated.") if activate else _("%(name)s deactivated.")
        messages.success(request, done % {"name": account.username})
    return redirect("registry:account_edit", pk=account.pk)


@require_http_methods(["GET", "POST"])
def account_password(request, pk):
    """A new one-off password for an account of one's sites (a forgotten password)."""
    account = access.get_account(request.user, pk)
    access.require(access.may_change_account(request.user, account))
    form = SetPasswordForm(account, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.account_set_password(
            by=request.user, account=account, password=form.cleaned_data["new_password1"]
        )
        done = _("New password of %(name)s set: hand it over in person.")
        messages.success(request, done % {"name": account.username})
        return redirect("registry:account_edit", pk=account.pk)
    return render(request, "registry/accounts/password.html", {"form": form, "account": account})


@require_GET
def account_audit(request):
    """Who changed whose rights, when, from what to what; CSV with ``?format=csv``."""
    access.require(access.has(request.user, access.AUDIT))
    entries = services.account_changes(services.accounts_audited_for(request.user))
    if request.GET.get("format") == "csv":
        response = HttpResponse(
            services.account_changes_csv(entries), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="account-changes.csv"'
        return response
    return render(request, "registry/accounts/audit.html", {"entries": entries})


@require_http_methods(["GET", "POST"])
def profile(request):
    """One's own preferences (the language of the pages), the way to one's password, and
    one's API tokens."""
    form = ProfileForm(request.POST or None, initial={"language": request.user.language})
    if request.method == "POST" and form.is_valid():
        services.user_set_language(user=request.user, language=form.cleaned_data["language"])
        messages.success(request, _("Your preferences were saved."))
        return redirect("profile")
    return _profile_page(request, form=form)


def _profile_page(request, *, form=None, token_form=None, new_key=None, status=200):
    context = {
        "form": form or ProfileForm(initial={"language": request.user.language}),
        "may_use_api": access.has(request.user, access.USE_API),
        "tokens": api_services.api_tokens_of(request.user),
        "token_form": token_form or ApiTokenForm(initial={"expires_on": _default_expiry()}),
        "new_key": new_key,
    }
    return render(request, "registry/accounts/profile.html", context, status=status)


def _default_expiry():
    return timezone.localdate() + dt.timedelta(days=API_TOKEN_DEFAULT_DAYS)


@require_POST
def api_token_create(request):
    """A new token: the page shows it once (only its hash is kept)."""
    access.require(access.has(request.user, access.USE_API))
    token_form = ApiTokenForm(request.POST)
    if token_form.is_valid():
        try:
            token, key = api_services.api_token_create(
                user=request.user,
                name=token_form.cleaned_data["name"],
                expires_at=token_form.expires_at(),
                read_only=token_form.cleaned_data["read_only"],
            )
        except ValidationError as error:
            # The service names the moment (expires_at); the form asks for the day.
            if hasattr(error, "error_dict") and "expires_at" in error.error_dict:
                error.error_dict["expires_on"] = error.error_dict.pop("expires_at")
            _add_errors(token_form, error)
        else:
            messages.success(request, _("Token %(name)s created.") % {"name": token.name})
            return _profile_page(request, new_key=key)
    return _profile_page(request, token_form=token_form)


@require_POST
def api_token_revoke(request, pk):
    token = get_object_or_404(api_services.api_tokens_of(request.user), pk=pk)
    api_services.api_token_revoke(user=request.user, token=token)
    messages.success(request, _("Token %(name)s revoked.") % {"name": token.name})
    return redirect("profile")


password_change = auth_views.PasswordChangeView.as_view(
    form_class=OwnPasswordChangeForm,
    template_name="registry/accounts/password_change.html",
    success_url=reverse_lazy("password_change_done"),
)
password_change_done = auth_views.PasswordChangeDoneView.as_view(
    template_name="registry/accounts/password_change_done.html"
)
