"""The Django admin (the registry administrator's): sites, every account, the export log,
the API tokens and the API request log.

An account that wrote anything is never deleted: the delete page refuses and offers
to deactivate it (``accounts.account_deactivate``). Each account's History page shows
its rights changes (simple-history, with the site memberships); *Account changes*
shows every account's, and downloads them as CSV.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from simple_history.admin import SimpleHistoryAdmin

from .accounts import services as accounts
from .models import ApiRequestLog, ApiToken, ExportLog, FreezeDeletion, Site, User


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(User)
class RegistryUserAdmin(SimpleHistoryAdmin, UserAdmin):
    list_display = ("username", "email", "role", "site_codes", "is_active")
    list_filter = ("role", "sites", "is_active")
    fieldsets = (
        *UserAdmin.fieldsets,
        (gettext_lazy("Registry"), {"fields": ("role", "sites")}),
    )
    add_fieldsets = (
        *UserAdmin.add_fieldsets,
        (gettext_lazy("Registry"), {"fields": ("role", "sites")}),
    )
    filter_horizontal = ("sites", "groups", "user_permissions")
    actions = ["deactivate_selected"]
    history_list_display = ("role", "is_active")

    @admin.display(description=gettext_lazy("sites"))
    def site_codes(self, account):
        return ", ".join(site.code for site in account.sites.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("sites")

    def get_actions(self, request):
        found = super().get_actions(request)
        found.pop("delete_selected", None)  # accounts are deactivated, one by one deleted
        return found

    def get_urls(self):
        own = [
            path(
                "audit/",
                self.admin_site.admin_view(self.audit_view),
                name="registry_user_audit",
            ),
            path(
                "<path:object_id>/deactivate/",
                self.admin_site.admin_view(self.deactivate_view),
                name="registry_user_deactivate",
            ),
        ]
        return own + super().get_urls()

    @admin.action(description=gettext_lazy("Deactivate the selected accounts"))
    def deactivate_selected(self, request, queryset):
        done = 0
        for account in queryset.exclude(pk=request.user.pk).filter(is_active=True):
            accounts.account_deactivate(
                by=request.user, account=account, reason=_("in the administration")
            )
            done += 1
        self.message_user(request, _("%(n)d accounts deactivated.") % {"n": done})

    def delete_view(self, request, object_id, extra_context=None):
        account = self.get_object(request, unquote(object_id))
        if account is not None and account.has_written():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "account": account,
                "title": _("This account cannot be deleted"),
            }
            return TemplateResponse(request, "admin/registry/user/delete_refused.html", context)
        return super().delete_view(request, object_id, extra_context)

    def deactivate_view(self, request, object_id):
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404
        if request.method != "POST" or not self.has_change_permission(request, account):
            return redirect("admin:registry_user_delete", object_id)
        try:
            accounts.account_deactivate(
                by=request.user, account=account, reason=request.POST.get("reason", "")
            )
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect("admin:registry_user_delete", object_id)
        self.message_user(request, _("%(name)s deactivated.") % {"name": account.username})
        return redirect("admin:registry_user_change", object_id)

    def audit_view(self, request):
        if not self.has_view_permission(request):
            raise Http404
        entries = accounts.account_changes()
        if request.GET.get("format") == "csv":
            response = HttpResponse(
                accounts.account_changes_csv(entries), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = 'attachment; filename="account-changes.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "entries": entries,
            "title": _("Account changes"),
            "csv_url": reverse("admin:registry_user_audit") + "?format=csv",
        }
        return TemplateResponse(request, "admin/registry/user/account_audit.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """An audit in the admin: listed and read, never added, changed or removed."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExportLog)
class ExportLogAdmin(ReadOnlyAdmin):
    """The export log, read-only: nobody edits or removes an audit entry."""

    list_display = ("created_at", "user", "format", "identifiable", "site", "n_patients", "via")
    list_filter = ("identifiable", "format", "via", "sites")
    date_hierarchy = "created_at"


@admin.register(ApiRequestLog)
class ApiRequestLogAdmin(ReadOnlyAdmin):
    """Every API request, read-only: who, with which token, what, and the answer."""

    list_display = ("at", "user", "token", "method", "endpoint", "status", "duration_ms")
    list_filter = ("method", "status")
    search_fields = ("endpoint", "user__username", "token__prefix")
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Every user's API tokens, read-only (their owners create and revoke them on
    their profile page; only a hash of each token is stored)."""

    list_display = (
        "user",
        "name",
        "prefix",
        "read_only",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("read_only",)
    search_fields = ("user__username", "name", "prefix")
    date_hierarchy = "created_at"
    exclude = ("key_hash",)


@admin.register(FreezeDeletion)
class FreezeDeletionAdmin(ReadOnlyAdmin):
    """Deleted data freezes, read-only: who deleted which freeze (name, hash), when, why."""

    list_display = ("deleted_at", "name", "sha256", "n_patients", "frozen_at", "deleted_by")
    list_filter = ("deleted_by",)
    readonly_fields = ("name", "sha256", "n_patients", "frozen_at", "deleted_by", "reason")
