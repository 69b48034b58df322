"""Two-factor login with an authenticator app (TOTP, django-otp).

Optional for everyone, compulsory for the roles listed in ``OTP_REQUIRED_ROLES``.
A user who must (or chose to) use it is sent, after the password, to set up a
device (first time) or to type the current code, before any other page opens.
A registry admin resets a lost device by deleting it in the admin ("TOTP devices").
"""

from __future__ import annotations

import logging
from base64 import b32encode

import segno
from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access

logger = logging.getLogger("registry.security")

# Pages a signed-in but not yet verified user may still open.
EXEMPT_URL_NAMES = frozenset({"two_factor_setup", "two_factor_verify", "logout"})


def requires_two_factor(user) -> bool:
    """Whether ``user`` must pass a TOTP code before using the registry."""
    if not user.is_authenticated:
        return False
    if access.holds_role(user, settings.OTP_REQUIRED_ROLES):
        return True
    # Someone who set up a device of their own accord is held to it.
    return user_has_device(user, confirmed=True)


def is_verified(user) -> bool:
    check = getattr(user, "is_verified", None)
    return bool(check and check())


class TwoFactorMiddleware:
    """Send a signed-in user who needs 2FA to set up or verify a device first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or is_verified(user):
            return None
        match = request.resolver_match
        if match is not None and match.url_name in EXEMPT_URL_NAMES:
            return None
        if getattr(view_func, "login_required", True) is False:
            return None  # public pages such as the login form
        if not requires_two_factor(user):
            return None
        target = "two_factor_verify" if user_has_device(user) else "two_factor_setup"
        return redirect_to_login(request.get_full_path(), reverse(target), "next")


class TokenForm(forms.Form):
    token = forms.RegexField(
        label=_("6-digit code from your authenticator app"),
        regex=r"^\s*\d{3}\s?\d{3}\s*$",
        max_length=12,
        error_messages={"invalid": _("Enter the 6 digits shown by the app.")},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean_token(self) -> str:
        return "".join(self.cleaned_data["token"].split())


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(settings.LOGIN_REDIRECT_URL)


def _qr_svg(device: TOTPDevice):
    # Inline SVG shapes only (no <style>, no script), so the CSP allows it.
    return mark_safe(segno.make(device.config_url, error="m").svg_inline(scale=4))


@never_cache
@sensitive_post_parameters("token")
def two_factor_setup(request):
    """Show a new secret as a QR code and confirm it with a first code."""
    user = request.user
    if user_has_device(user, confirmed=True):
        return redirect(f"{reverse('two_factor_verify')}?next={_next_url(request)}")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            logger.info("Two-factor device set up for user %s", user.get_username())
            return redirect(_next_url(request))
        logger.warning("Two-factor set-up code refused for user %s", user.get_username())
        form.add_error("token", _("That code is not valid. Check the phone's clock and retry."))
    context = {
        "form": form,
        "qr_svg": _qr_svg(device),
        "secret": b32encode(device.bin_key).decode(),
        "next": _next_url(request),
    }
    return render(request, "registration/two_factor_setup.html", context)


@never_cache
@sensitive_post_parameters("token")
def two_factor_verify(request):
    """Ask for the current code of the user's device."""
    user = request.user
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        return redirect(f"{reverse('two_factor_setup')}?next={_next_url(request)}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            otp_login(request, device)
            return redirect(_next_url(request))
        logger.warning("Two-factor code refused for user %s", user.get_username())
        form.add_error("token", _("That code is not valid (or too many tries: wait and retry)."))
    context = {"form": form, "next": _next_url(request)}
    return render(request, "registration/two_factor_verify.html", context)
