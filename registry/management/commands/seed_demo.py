"""``manage.py seed_demo``: site SIS, one user per role, and the SYNTHETIC demo cohort.

Idempotent: a second run reuses the site, the users and the patients. The
passwords printed are demo-only; never run this on a registry with real data
and real users.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from registry import demo
from registry.choices import Language, Role
from registry.models import Patient, Site, User

# Demo-only credentials, printed by the command and documented in docs/demo-cohort.md.
DEMO_USERS = (
    ("nurse", Role.DATA_ENTRY, "demo-nurse-2021"),
    ("investigator", Role.INVESTIGATOR, "demo-investigator-2021"),
    ("monitor", Role.MONITOR, "demo-monitor-2021"),
    ("siteadmin", Role.SITE_ADMIN, "demo-siteadmin-2021"),
    ("admin", Role.ADMIN, "demo-admin-2021"),
)

# The demo nurse reads the registry in Vietnamese, the investigator in English; the
# others keep the registry's default (settings.LANGUAGE_CODE).
DEMO_LANGUAGES = {"nurse": Language.VIETNAMESE, "investigator": Language.ENGLISH}


def ensure_site() -> Site:
    site, _ = Site.objects.get_or_create(code=demo.SITE_CODE, defaults={"name": demo.SITE_NAME})
    return site


def ensure_users(site: Site) -> dict[str, User]:
    users = {}
    for username, role, password in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, role=role)
            user.set_password(password)
            if role == Role.ADMIN:
                user.is_staff = True
                user.is_superuser = True
            user.language = DEMO_LANGUAGES.get(username, "")
            user.save()
        elif not user.language and username in DEMO_LANGUAGES:
            user.language = DEMO_LANGUAGES[username]
            user.save(update_fields=["language"])
        user.sites.add(site)
        users[username] = user
    return users


class Command(BaseCommand):
    help = (
        "Create site SIS, one demo user per role and the deterministic SYNTHETIC cohort of "
        "85 patients shaped like the published study (no real patient is in it)."
    )

    def handle(self, *args, **options):
        from registry.interchange.importer import registry_import

        with transaction.atomic():
            site = ensure_site()
            users = ensure_users(site)
        rows = demo.cohort_rows()
        # Demo patients already there are reused as they are (perhaps edited or locked
        # during a demonstration); only missing ones are created.
        present = set(
            Patient.objects.filter(study_id__in=[r["study_id"] for r in rows]).values_list(
                "study_id", flat=True
            )
        )
        missing = [r for r in rows if r["study_id"] not in present]
        created = 0
        if missing:
            result = registry_import(
                rows=missing,
                user=users["admin"],
                filename="the synthetic demo cohort",
                dry_run=False,
                create_sites=False,
            )
            if result.problems:
                for problem in result.problems:
                    self.stderr.write(str(problem))
                raise SystemExit(1)
            created = result.created
        out = self.stdout
        out.write(f"Site {site.code}: {site.name}")
        out.write(
            "SYNTHETIC demo cohort (no real patient): "
            f"{created} patients created, {len(present)} reused "
            f"(study IDs {demo.STUDY_ID_PREFIX}001 to {demo.STUDY_ID_PREFIX}{len(rows):03d})."
        )
        out.write(
            "Demo logins (demo-only passwords; change or delete these users on a real server):"
        )
        for username, role, password in DEMO_USERS:
            out.write(f"  {username:<13} {password:<24} {Role(role).label}")
