from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _facts_follow_sections(sender, **kwargs):
    """``registry.signals.sections_written``: the patients' quality facts are written
    again (``analytics.quality.facts_refresh``); imported here, when first needed."""
    from . import quality

    quality.on_sections_written(sender, **kwargs)


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Study tables")

    def ready(self):
        from registry.signals import sections_written

        sections_written.connect(_facts_follow_sections, dispatch_uid="analytics-quality-facts")
