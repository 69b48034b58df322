"""Accounts: created, changed and deactivated (never deleted once they wrote anything),
and the audit of who changed whose rights.

Each service is keyword-only, asks ``registry.access`` who may act, runs
``full_clean()`` before ``save()`` and attributes the account's history row to the
acting user. The history (``User.history``, with the site memberships) is read back
in words by :func:`account_changes`, for the admin, the site administrator's pages and
the CSV export alike.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from simple_history.models import HistoricalRecords

from registry import access
from registry.choices import Role
from registry.display import NO, YES
from registry.interchange.columns import FORMULA_PREFIXES
from registry.models import Site, User
from registry.services import REASON_MAX_LENGTH

# The account fields whose changes the audit shows, in this order (then the sites).
AUDITED_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "role",
    "is_active",
    "is_staff",
    "is_superuser",
)
# Reasons are stored as the audit trail's other reasons are ("import of FILE"): in
# English, whatever the language of the page.
DEACTIVATED = "deactivated: %(reason)s"
REACTIVATED = "reactivated: %(reason)s"
PASSWORD_SET = "password set by %(who)s"
PASSWORD_CHANGED = "password changed by its owner"


# --- changing accounts --------------------------------------------------------------------


def _require_grantable(by, role: str, sites) -> None:
    access.require(role in access.roles_grantable_by(by))
    allowed = set(access.sites_for(by).values_list("pk", flat=True))
    access.require({site.pk for site in sites} <= allowed)


def _check_sites(role: str, sites) -> None:
    if not sites and access.ALL_SITES not in access.PERMISSIONS[Role(role)]:
        message = _("Choose at least one site: this role sees only its sites.")
        raise ValidationError({"sites": message})


def _save(account: User, by, reason: str = "") -> None:
    account.full_clean()
    account._history_user = by
    if reason:
        account._change_reason = reason[:REASON_MAX_LENGTH]
    account.save()


def account_create(
    *, by, username: str, role: str, sites, password: str, first_name="", last_name="", email=""
) -> User:
    """Create an account of ``role`` in ``sites`` with a one-off password."""
    _require_grantable(by, role, sites)
    _check_sites(role, sites)
    account = User(
        username=username, role=role, first_name=first_name, last_name=last_name, email=email
    )
    account.set_password(password)
    with transaction.atomic():
        _save(account, by)
        account.sites.set(sites)  # a second history row, by the same hand, with the sites
    return account


def account_update(*, by, account: User, role: str, sites, first_name="", last_name="", email=""):
    """Change an account's names, role and sites (one's own: names and e-mail only)."""
    access.require(account.pk == by.pk or access.may_change_account(by, account))
    if account.pk == by.pk and (role != account.role or set(sites) != set(account.sites.all())):
        raise ValidationError(_("Your own role and sites are changed by another administrator."))
    if account.pk != by.pk:
        _require_grantable(by, role, sites)
        _check_sites(role, sites)
    account.role, account.first_name, account.last_name, account.email = (
        role,
        first_name,
        last_name,
        email,
    )
    with transaction.atomic():
        _save(account, by)
        if set(sites) != set(account.sites.all()):
            account.sites.set(sites)
    return account


def account_deactivate(*, by, account: User, reason: str) -> User:
    """Deactivate an account: it can no longer sign in, its open sessions end, and
    everything it wrote keeps its name."""
    return _set_active(by=by, account=account, active=False, reason=reason)


def account_reactivate(*, by, account: User, reason: str) -> User:
    return _set_active(by=by, account=account, active=True, reason=reason)


def _set_active(*, by, account: User, active: bool, reason: str) -> User:
    access.require(access.may_change_account(by, account))
    if account.pk == by.pk:
        raise ValidationError(_("You cannot deactivate your own account."))
    if not (reason or "").strip():
        raise ValidationError({"reason": _("Say why.")})
    if account.is_active == active:
        return account
    account.is_active = active
    template = REACTIVATED if active else DEACTIVATED
    _save(account, by, template % {"reason": reason.strip()})
    return account


def account_set_password(*, by, account: User, password: str) -> User:
    """Give an account a new one-off password (the form has checked its strength)."""
    access.require(access.may_change_account(by, account))
    account.set_password(password)
    _save(account, by, PASSWORD_SET % {"who": by.username})
    return account


def account_delete(*, by, account: User) -> None:
    """Delete an account that never wrote anything (a mistake); else refuse."""
    access.require(access.has(by, access.ADMINISTER))
    if account.has_written():
        raise PermissionDenied(_("This account wrote to the registry: deactivate it instead."))
    account._history_user = by
    account.delete()


# --- the audit of rights changes ----------------------------------------------------------


@dataclass
class AccountChange:
    """One recorded change of an account, in words."""

    when: object
    who: str
    account: str
    action: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (label, old, new)
    reason: str = ""

    @property
    def summary(self) -> str:
        return "; ".join(f"{label}: {old} → {new}" for label, old, new in self.changes)


def _site_snapshots(records) -> dict[int, frozenset[str]]:
    """The site codes of each history record (one query)."""
    through = HistoricalRecords.m2m_models[User._meta.get_field("sites")]
    codes = dict(Site.objects.values_list("pk", "code"))
    found: dict[int, set[str]] = {record.history_id: set() for record in records}
    rows = through.objects.filter(history_id__in=list(found)).values_list("history_id", "site_id")
    for history_id, site_id in rows:
        found[history_id].add(codes.get(site_id, str(site_id)))
    return {key: frozenset(value) for key, value in found.items()}


def _words(name: str, value) -> str:
    if name == "role":
        return str(dict(Role.choices).get(value, value or ""))
    if isinstance(value, bool):
        return str(YES if value else NO)
    return str(value or "")


def _diff(record, previous, sites, before) -> list[tuple[str, str, str]]:
    changes = []
    for name in AUDITED_FIELDS:
        new = getattr(record, name)
        old = getattr(previous, name) if previous is not None else None
        if previous is not None and old == new or previous is None and new in (None, "", False):
            continue
        label = capfirst(str(User._meta.get_field(name).verbose_name))
        changes.append((label, _words(name, old) if previous else "", _words(name, new)))
    if sites != before:
        label = capfirst(str(User._meta.get_field("sites").verbose_name))
        changes.append((label, ", ".join(sorted(before)), ", ".join(sorted(sites))))
    return changes


def account_changes(accounts: QuerySet[User] | None = None) -> list[AccountChange]:
    """Every recorded change of these accounts (all when None), newest first, in words.

    Rows that changed nothing shown (e.g. the second row one admin form writes for
    the sites) are left out unless they carry a reason (a password set, a
    deactivation). Three queries whatever the number of rows.
    """
    records = User.history.select_related("history_user").order_by("history_date", "history_id")
    if accounts is not None:
        records = records.filter(id__in=accounts.values("pk"))
    records = list(records)
    snapshots = _site_snapshots(records)
    previous: dict[int, object] = {}
    entries = []
    for record in records:
        before = previous.get(record.id)
        sites = snapshots[record.history_id]
        old_sites = snapshots[before.history_id] if before is not None else frozenset()
        changes = _diff(record, before, sites, old_sites) if record.history_type != "-" else []
        reason = record.history_change_reason or ""
        if changes or reason or record.history_type != "~":
            who = record.history_user.username if record.history_user else _("(command line)")
            action = record.get_history_type_display()
            entries.append(AccountChange(record.history_date, who, record.username, action))
            entries[-1].changes, entries[-1].reason = changes, reason
        previous[record.id] = record
    entries.reverse()
    return entries


def accounts_audited_for(user) -> QuerySet[User]:
    """Accounts whose changes ``user`` may read: those who belong, or once belonged, to
    the user's sites (every account with ``ALL_SITES``)."""
    access.require(access.has(user, access.AUDIT))
    if access.has(user, access.ALL_SITES):
        return User.objects.all()
    through = HistoricalRecords.m2m_models[User._meta.get_field("sites")]
    sites = access.site_ids_for(user)
    once = through.objects.filter(site_id__in=sites).values("user_id")
    now = User.sites.through.objects.filter(site_id__in=sites).values("user_id")
    return User.objects.filter(pk__in=once) | User.objects.filter(pk__in=now)


CSV_COLUMNS = ("when", "who", "account", "action", "changes", "reason")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def account_changes_csv(entries: list[AccountChange]) -> str:
    """The audit as CSV (ISO date-times in UTC, one row per change)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        texts = (entry.who, entry.account, entry.action, entry.summary, entry.reason)
        writer.writerow([entry.when.isoformat(), *map(_cell, texts)])
    return buffer.getvalue()


# --- one's own preferences ---------------------------------------------------------------


def user_set_language(*, user: User, language: str) -> User:
    """Set the language of ``user``'s pages ("" for the registry's default). A preference,
    not a right: no history row, and any signed-in user may set their own."""
    user.language = language
    user.full_clean(exclude=["password", "username"])
    user.save_without_historical_record(update_fields=["language"])
    return user
