"""The Django admin site, for the registry administrator only.

Django lets any staff account in; here the account must also hold
``access.ADMINISTER`` (the registry administrator, or a superuser). A site
administrator manages the accounts of their own sites on the registry's own pages
(``registry/accounts/views.py``), which are scoped to their sites.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class RegistryAdminSite(admin.AdminSite):
    def has_permission(self, request) -> bool:
        from . import access  # this module is loaded with the app list, before the models

        return super().has_permission(request) and access.has(request.user, access.ADMINISTER)


class RegistryAdminConfig(AdminConfig):
    """``django.contrib.admin`` with :class:`RegistryAdminSite` as its site."""

    default_site = "registry.admin_site.RegistryAdminSite"
