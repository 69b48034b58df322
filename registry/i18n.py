"""The language of the pages: each signed-in user's own choice, else the registry's.

``LocaleMiddleware`` picks a language from the language cookie or the browser for the
login page; once a user is signed in, ``UserLanguageMiddleware`` (after the
authentication middleware) applies the language of their account, or
``settings.LANGUAGE_CODE`` when they have not chosen one. The switcher in the navbar
posts to :func:`language_set`, which stores the choice on the account and in the cookie.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .accounts.services import user_set_language
from .choices import Language

# Files that leave the registry (exports, downloads of the study tables, the interchange
# format) are written in one language whatever the page's: their labels in English,
# codes as they are, ISO dates, a decimal point.
FILE_LANGUAGE = "en"


def in_file_language():
    """Context manager: what is written inside it reads the same for every user."""
    return translation.override(FILE_LANGUAGE)


def user_language(user) -> str | None:
    """The language of ``user``'s pages; None for an anonymous visitor (the browser's)."""
    if not user.is_authenticated:
        return None
    return user.language or settings.LANGUAGE_CODE


class UserLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = user_language(request.user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


def _next_url(request) -> str:
    target = request.POST.get("next") or request.headers.get("referer") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe else settings.LOGIN_REDIRECT_URL


@login_not_required
@require_POST
def language_set(request):
    """Switch the pages' language: on the account when signed in, in the cookie always."""
    language = request.POST.get("language", "")
    if language not in Language.values:
        return HttpResponseBadRequest()
    if request.user.is_authenticated:
        user_set_language(user=request.user, language=language)
    response = redirect(_next_url(request))
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
    )
    return response
