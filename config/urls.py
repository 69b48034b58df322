from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from analytics.urls import flow_patterns, quality_patterns
from registry import i18n, sessions
from registry.accounts import views as account_views
from registry.api import urls as registry_api

# The REST API (docs/api.md): the registry's endpoints and the study's reports.
api_patterns = [
    *registry_api.urlpatterns,
    registry_api.api_path("v1/study-tables/", "analytics.api.StudyTables", "study_tables"),
    registry_api.api_path(
        "v1/quality-indicators/", "analytics.api.QualityIndicators", "quality_indicators"
    ),
]

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", account_views.profile, name="profile"),
    path("accounts/profile/tokens/", account_views.api_token_create, name="api_token_create"),
    path(
        "accounts/profile/tokens/<int:pk>/revoke/",
        account_views.api_token_revoke,
        name="api_token_revoke",
    ),
    path("accounts/language/", i18n.language_set, name="language_set"),
    path("accounts/session-expired/", sessions.session_expired, name="session_expired"),
    path("accounts/keep-alive/", sessions.keep_alive, name="keep_alive"),
    path("accounts/password/", account_views.password_change, name="password_change"),
    path(
        "accounts/password/done/",
        account_views.password_change_done,
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("reports/", include("analytics.urls")),
    path("flow/", include(flow_patterns)),
    path("quality/", include(quality_patterns)),
    path("", include("registry.urls")),
    path("api/", include((api_patterns, "api"))),
]

# Two-factor login (registry/twofactor.py); error pages are templates/400-500.html.
from registry import twofactor  # noqa: E402

urlpatterns += [
    path("accounts/two-factor/setup/", twofactor.two_factor_setup, name="two_factor_setup"),
    path("accounts/two-factor/verify/", twofactor.two_factor_verify, name="two_factor_verify"),
]

# A database that does not answer gets a 503 that keeps what was typed (registry/errors.py).
handler400 = "registry.errors.bad_request"
handler500 = "registry.errors.server_error"
