"""Nothing a nurse typed is lost when her session ends.

The session ends after ``SESSION_COOKIE_AGE`` seconds without a request. The page warns
before (``static/registry/session.js``) and offers to stay signed in (``keep_alive``);
what she types is kept in her browser's local storage, never on the server
(``static/registry/drafts.js``), and offered back on the same form after she signs in again.

A request whose session has ended (its cookie names a session the server no longer has)
lands on ``session_expired``, the sign-in page that says so and comes back to the form;
a form refused by the CSRF check for the same reason does too.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST


def session_seconds() -> int:
    """How long a session lasts without a request."""
    return settings.SESSION_COOKIE_AGE


def warning_seconds() -> int:
    """How long before the end of the session the page warns: two minutes, or half the
    session when it is shorter than four."""
    return min(120, session_seconds() // 2)


def session_ended(request) -> bool:
    """Whether the request carries a session cookie whose session has ended (expired or
    flushed on the server): an anonymous visitor who was signed in a moment ago. (A
    deactivated account's session still exists: that is not an ended session.)"""
    if request.user.is_authenticated or settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False
    return not request.session.keys()


def send_to_sign_in(request):
    """The sign-in page, coming back to this address afterwards; the one that says the
    session ended when it did."""
    target = "session_expired" if session_ended(request) else settings.LOGIN_URL
    return redirect_to_login(request.get_full_path(), reverse(target))


class SignInRequiredMiddleware(LoginRequiredMiddleware):
    """Django's ``LoginRequiredMiddleware``, telling the nurse her session ended."""

    def handle_no_permission(self, request, view_func):
        return send_to_sign_in(request)


@require_POST
def keep_alive(request):
    """ "Stay signed in": any request pushes the session's end back
    (``SESSION_SAVE_EVERY_REQUEST``); this one only says how long it now lasts."""
    return JsonResponse({"seconds": session_seconds()})


session_expired = login_not_required(
    auth_views.LoginView.as_view(extra_context={"session_expired": True})
)


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a form sent after the session ended goes to the sign-in page
    and back to the form (the browser offers what was typed); otherwise the page says
    what to do, in the site's layout."""
    if session_ended(request):
        return send_to_sign_in(request)
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
