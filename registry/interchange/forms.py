"""Forms of the import/export pages."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from registry import access
from registry.models import Site

IMPORT_EXTENSIONS = (".csv", ".xlsx")


def max_upload_bytes() -> int:
    """``IMPORT_MAX_UPLOAD_BYTES``, else ``IMPORT_MAX_UPLOAD_MB`` megabytes (default 10)."""
    explicit = getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", None)
    if explicit:
        return int(explicit)
    return int(getattr(settings, "IMPORT_MAX_UPLOAD_MB", 10)) * 1024 * 1024


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV (UTF-8) or Excel .xlsx with the interchange columns in the header row."),
    )
    create_sites = forms.BooleanField(
        label=_("Create unknown site codes"), required=False, initial=False
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if not access.has(user, access.ALL_SITES):  # sites are the registry admin's
            del self.fields["create_sites"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if Path(upload.name).suffix.lower() not in IMPORT_EXTENSIONS:
            raise forms.ValidationError(_("Only .csv and .xlsx files can be imported."))
        limit = max_upload_bytes()
        if upload.size > limit:
            raise forms.ValidationError(
                _("The file is larger than %(limit)s.") % {"limit": filesizeformat(limit)}
            )
        return upload


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[
            ("csv", _("CSV (interchange columns)")),
            ("xlsx", _("Excel .xlsx")),
            ("dta", _("Stata .dta (labelled)")),
            (
                "redcap",
                _("REDCap records (CSV; its data dictionary is on the data dictionary page)"),
            ),
        ],
        initial="csv",
    )
    site = forms.ModelChoiceField(
        label=_("Site"), queryset=Site.objects.none(), required=False, empty_label=_("All my sites")
    )
    identifiable = forms.BooleanField(
        label=_("Identifiable (study IDs and calendar dates; registry admins only, audited)"),
        required=False,
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = access.sites_for(user)
        if not access.has(user, access.EXPORT_IDENTIFIABLE):
            del self.fields["identifiable"]
