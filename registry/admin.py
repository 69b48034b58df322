from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from .models import Site, User


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(User)
class RegistryUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_active")
    list_filter = ("role", "sites", "is_active")
    fieldsets = (
        *UserAdmin.fieldsets,
        (_("Registry"), {"fields": ("role", "sites")}),
    )
    add_fieldsets = (
        *UserAdmin.add_fieldsets,
        (_("Registry"), {"fields": ("role", "sites")}),
    )
    filter_horizontal = ("sites", "groups", "user_permissions")
