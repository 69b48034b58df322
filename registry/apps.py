from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Stroke registry")

    def ready(self):
        # Signing out deletes the user's pending import upload.
        from .interchange import uploads  # noqa: F401
