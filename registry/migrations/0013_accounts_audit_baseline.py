"""The account audit's starting point, and the sites of the export log's entries.

Every existing account gets one history row with its role, flags and sites as they are
(reason "account audit started"), so the first change recorded afterwards reads
"from what to what". Each export-log entry gets the sites it covered: the site chosen,
else the user's sites at this moment (every site for a registry administrator or the
command line, who read every site).
"""

from django.db import migrations
from django.utils import timezone

BASELINE = "account audit started"
ALL_SITES_ROLES = ("admin",)


def account_baseline(apps, schema_editor):
    User = apps.get_model("registry", "User")
    HistoricalUser = apps.get_model("registry", "HistoricalUser")
    HistoricalSites = apps.get_model("registry", "HistoricalUser_sites")
    tracked = [
        f.attname
        for f in HistoricalUser._meta.concrete_fields
        if not f.name.startswith("history") and f.name != "id"
    ]
    memberships = {}
    through = User._meta.get_field("sites").remote_field.through
    for row in through.objects.values("pk", "user_id", "site_id"):
        memberships.setdefault(row["user_id"], []).append(row)
    now = timezone.now()
    for user in User.objects.all():
        values = {name: getattr(user, name) for name in tracked}
        record = HistoricalUser.objects.create(
            id=user.pk,
            history_date=now,
            history_type="~",
            history_change_reason=BASELINE,
            **values,
        )
        HistoricalSites.objects.bulk_create(
            HistoricalSites(history=record, id=row["pk"], user_id=user.pk, site_id=row["site_id"])
            for row in memberships.get(user.pk, [])
        )


def export_log_sites(apps, schema_editor):
    ExportLog = apps.get_model("registry", "ExportLog")
    Site = apps.get_model("registry", "Site")
    every = list(Site.objects.values_list("pk", flat=True))
    for entry in ExportLog.objects.select_related("user"):
        if entry.site_id is not None:
            covered = [entry.site_id]
        elif entry.user is None or entry.user.is_superuser or entry.user.role in ALL_SITES_ROLES:
            covered = every
        else:
            covered = list(entry.user.sites.values_list("pk", flat=True))
        entry.sites.set(covered)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0012_accounts_audit_site_admin"),
    ]

    operations = [
        migrations.RunPython(account_baseline, migrations.RunPython.noop),
        migrations.RunPython(export_log_sites, migrations.RunPython.noop),
    ]
