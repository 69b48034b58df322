"""``manage.py freeze_registry``: freeze the registry's rows under a name, list the
freezes, or compare one with the live data or another freeze (``registry.freezes``)."""

from __future__ import annotations

import argparse
import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry import freezes
from registry.models import DataFreeze, Site, User


def freeze_named(name: str) -> DataFreeze:
    """The freeze called ``name`` (CommandError naming the known ones otherwise); for the
    commands that compute from a freeze (``--freeze NAME``)."""
    freeze = DataFreeze.objects.filter(name=name).first()
    if freeze is None:
        known = ", ".join(DataFreeze.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no data freeze named {name!r} (freezes: {known})")
    return freeze


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from exc


class Command(BaseCommand):
    help = (
        "Freeze the registry's interchange rows as NAME (--reason required; --site for one "
        "site, --from / --to for a range of door dates), list the freezes (--list), or "
        "compare the freeze NAME with the live data or another freeze "
        "(--compare NAME [--with OTHER])."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="the new freeze's name (letters, digits, -)")
        parser.add_argument("--reason", help="why the data are frozen (e.g. the manuscript)")
        parser.add_argument("--site", help="only this site code")
        parser.add_argument(
            "--from", dest="date_from", type=_day, help="first door date (YYYY-MM-DD)"
        )
        parser.add_argument("--to", dest="date_to", type=_day, help="last door date (YYYY-MM-DD)")
        parser.add_argument("--user", help="freeze as this registry user (its sites apply)")
        parser.add_argument("--list", action="store_true", help="list the freezes")
        parser.add_argument("--compare", metavar="NAME", help="compare this freeze")
        parser.add_argument("--with", dest="other", metavar="OTHER", help="with this freeze")

    def handle(self, *args, **options):
        if options["list"]:
            return self._list()
        if options["compare"]:
            return self._compare(options["compare"], options["other"])
        if not options["name"]:
            raise CommandError("give a NAME to freeze, --list or --compare NAME")
        user = self._user(options["user"])
        site = None
        if options["site"]:
            site = Site.objects.filter(code=options["site"]).first()
            if site is None:
                raise CommandError(f"unknown site code {options['site']!r}")
        try:
            freeze = freezes.freeze_create(
                name=options["name"],
                reason=options["reason"] or "",
                user=user,
                site=site,
                date_from=options["date_from"],
                date_to=options["date_to"],
            )
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(problems) from exc
        except PermissionDenied as exc:
            raise CommandError("this user may not freeze these data") from exc
        self.stdout.write(
            f"Frozen {freeze.n_patients} patients as {freeze.name!r} at "
            f"{freeze.created_at.isoformat(timespec='seconds')}, SHA-256 {freeze.sha256}"
        )

    def _user(self, username):
        if not username:
            return None
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"unknown user {username!r}")
        return user

    def _list(self) -> None:
        for freeze in DataFreeze.objects.defer("rows_gz").order_by("created_at"):
            self.stdout.write(
                f"{freeze.name}\t{freeze.created_at.isoformat(timespec='seconds')}\t"
                f"{freeze.n_patients}\t{','.join(freeze.site_codes)}\t{freeze.sha256}"
            )

    def _compare(self, name: str, other_name: str | None) -> None:
        freeze = freeze_named(name)
        other = freeze_named(other_name) if other_name else None
        try:
            result = freezes.freeze_compare(freeze=freeze, other=other)
        except freezes.FreezeTampered as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"# {result.before} -> {result.after}")
        for study_id in result.added:
            self.stdout.write(f"added\t{study_id}")
        for study_id in result.removed:
            self.stdout.write(f"removed\t{study_id}")
        for change in result.changes:
            self.stdout.write(
                f"changed\t{change.study_id}\t{change.column}\t{change.before}\t{change.after}"
            )
        self.stdout.write(
            f"# {len(result.added)} added, {len(result.removed)} removed, "
            f"{len(result.changes)} values changed"
        )
