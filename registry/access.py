"""Who may see and do what: decided here and nowhere else.

What a role may do is one table, ``PERMISSIONS``, from role to named
permissions; every view, service, form and template flag asks ``has(user,
permission)`` (or a rule below built on it), so a new role is one row and a
new kind of action one name. A superuser counts as a registry administrator.

Only ``ALL_SITES`` reaches beyond one's own sites: the registry administrator holds
it; the site administrator, who manages the users and the data of their own sites,
does not, and is scoped to their sites like every other role.

Every queryset a view touches starts from these functions. Records of a site
the user does not belong to are simply absent from the querysets, so they
answer 404 (not 403) and are never listed or counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.shortcuts import get_object_or_404

from .choices import Role
from .models import DataFreeze, DataQuery, ExportLog, Patient, ScreeningEntry, Site, User

# --- the named permissions -------------------------------------------------------

ALL_SITES = "all_sites"  # read every site's records, not only those of one's own sites
EDIT_CLINICAL = "edit_clinical"  # patients, screening log, CRF sections, calls, mRS interviews
VIEW_REPORTS = "view_reports"  # the study tables, figures and flow chart
VIEW_QUALITY = "view_quality"  # the quality-of-care indicators per site and quarter
EXPORT = "export"  # the de-identified export of one's readable patients
EXPORT_IDENTIFIABLE = "export_identifiable"  # study IDs and calendar dates (audited)
IMPORT = "import"  # load a CSV/xlsx file into the registry
LOCK = "lock"  # lock and unlock a patient's record
EXCLUDE = "exclude"  # exclude a patient from the analysis, or take it back
RAISE_QUERY = "raise_query"  # raise a data query (and close or re-open one's own)
ANSWER_QUERY = "answer_query"  # answer a data query (after correcting the value)
CLOSE_ANY_QUERY = "close_any_query"  # close or re-open anyone's data query
ADMINISTER = "administer"  # the Django admin site (sites, all users, 2FA); it also needs is_staff
MANAGE_USERS = "manage_users"  # the accounts of one's sites: create, role and sites, deactivate
AUDIT = "audit"  # the export log and the account changes of one's sites
USE_API = "use_api"  # the REST API (/api/v1/) with one's own tokens, within one's other rights
FREEZE = "freeze"  # freeze the data of one's sites, read and compare one's sites' freezes
DELETE_FREEZE = "delete_freeze"  # delete a data freeze (audited): the registry administrator

ALL_PERMISSIONS = frozenset(
    {
        ALL_SITES,
        EDIT_CLINICAL,
        VIEW_REPORTS,
        VIEW_QUALITY,
        EXPORT,
        EXPORT_IDENTIFIABLE,
        IMPORT,
        LOCK,
        EXCLUDE,
        RAISE_QUERY,
        ANSWER_QUERY,
        CLOSE_ANY_QUERY,
        ADMINISTER,
        MANAGE_USERS,
        AUDIT,
        USE_API,
        FREEZE,
        DELETE_FREEZE,
    }
)

# --- who holds which ----------------------------------------------------------------

PERMISSIONS: dict[Role, frozenset[str]] = {
    # The study nurse enters and corrects the data of their sites.
    Role.DATA_ENTRY: frozenset({EDIT_CLINICAL, ANSWER_QUERY, EXCLUDE, USE_API}),
    # The investigator answers for their sites' data: reads, exports, queries, excludes
    # and locks, but does not enter the clinical data.
    Role.INVESTIGATOR: frozenset(
        {VIEW_REPORTS, VIEW_QUALITY, EXPORT, LOCK, EXCLUDE, RAISE_QUERY, USE_API, FREEZE}
    ),
    # The monitor checks the data against the source documents: reads, queries, locks.
    Role.MONITOR: frozenset({VIEW_REPORTS, VIEW_QUALITY, LOCK, RAISE_QUERY, USE_API}),
    # The site administrator manages the users and the data of their own sites; the
    # Django admin (sites, every account) is the registry administrator's.
    # A freeze may hold other sites' rows and reproduces published figures: deleting one
    # is the registry administrator's.
    Role.SITE_ADMIN: ALL_PERMISSIONS - {ALL_SITES, ADMINISTER, DELETE_FREEZE},
    # The registry administrator runs the registry across all sites.
    Role.ADMIN: ALL_PERMISSIONS,
}


def role_of(user) -> Role | None:
    """The role whose permissions apply: None if not signed in; a superuser is an admin."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return Role(user.role) if user.role in Role.values else None


def has(user, permission: str) -> bool:
    """Whether ``user`` holds ``permission`` (one of the names above) by their role."""
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    role = role_of(user)
    return role is not None and permission in PERMISSIONS[role]


def holds_role(user, roles: Iterable[str]) -> bool:
    """Whether ``user`` holds one of ``roles`` (role codes, e.g. from the settings).

    For policies set per role outside the table (two-factor login): a superuser holds
    their own role and the registry admin's.
    """
    if not user.is_authenticated:
        return False
    held = {user.role, Role.ADMIN} if user.is_superuser else {user.role}
    return not held.isdisjoint(roles)


def can_close_query(user, query: DataQuery) -> bool:
    """Close or re-open ``query``: anyone's with CLOSE_ANY_QUERY, else only one's own.

    Whoever raised a query judges the answer; another monitor does not overrule them.
    """
    if has(user, CLOSE_ANY_QUERY):
        return True
    return has(user, RAISE_QUERY) and query.raised_by_id == user.pk


# --- what a user may read -------------------------------------------------------------


def sites_for(user) -> QuerySet[Site]:
    if not user.is_authenticated:
        return Site.objects.none()
    if has(user, ALL_SITES):
        return Site.objects.all()
    return user.sites.all()


def patients_for(user) -> QuerySet[Patient]:
    """Patients the user may read."""
    if not user.is_authenticated:
        return Patient.objects.none()
    if has(user, ALL_SITES):
        return Patient.objects.all()
    # The site keys as values, not as a subquery: PostgreSQL can then walk the (site,
    # study ID) index of those sites. With the subquery it joined the patients' sections
    # in study-ID order and filtered the site last, reading every patient sorted before
    # the nurse's first one.
    return Patient.objects.filter(site_id__in=site_ids_for(user))


def site_ids_for(user) -> list[int]:
    """Keys of a user's own sites, read once per user object (once per request).

    ``user.sites.set()`` / ``add()`` / ``remove()`` on that object forget them.
    """
    known = user.__dict__.get(_SITE_IDS)
    if known is None:
        known = user.__dict__[_SITE_IDS] = list(user.sites.values_list("pk", flat=True))
    return known


_SITE_IDS = "_registry_site_ids"


@receiver(m2m_changed, sender=User.sites.through)
def _forget_site_ids(sender, instance, **kwargs) -> None:
    instance.__dict__.pop(_SITE_IDS, None)  # a user's, or a site's (which has none)


def screening_for(user):
    """Screening-log entries of the user's sites (the log precedes any patient record)."""
    return ScreeningEntry.objects.filter(site__in=sites_for(user))


def get_patient(user, pk) -> Patient:
    """The patient if the user may read it, else 404."""
    return get_object_or_404(patients_for(user).select_related("site"), pk=pk)


def require(allowed: bool) -> None:
    """Raise 403 unless ``allowed`` (for actions, after the object passed 404)."""
    if not allowed:
        raise PermissionDenied


def editable_sites_for(user) -> QuerySet[Site]:
    """Sites in which the user may create patients."""
    return sites_for(user) if has(user, EDIT_CLINICAL) else Site.objects.none()


# --- accounts -----------------------------------------------------------------------------


def users_for(user) -> QuerySet[User]:
    """Accounts of the user's sites (every account with ``ALL_SITES``): another site's
    account answers 404, as its patients do; seeing them needs ``MANAGE_USERS``."""
    if not user.is_authenticated:
        return User.objects.none()
    if has(user, ALL_SITES):
        return User.objects.all()
    members = User.sites.through.objects.filter(site_id__in=site_ids_for(user))
    return User.objects.filter(pk__in=members.values("user_id"))


def get_account(user, pk) -> User:
    """An account of the user's sites, else 404; then 403 without ``MANAGE_USERS``."""
    account = get_object_or_404(users_for(user), pk=pk)
    require(has(user, MANAGE_USERS))
    return account


def roles_grantable_by(user) -> list[Role]:
    """Roles ``user`` may give: every role with ``ALL_SITES``, else every role that is
    limited to its sites (not the registry administrator's)."""
    if not has(user, MANAGE_USERS):
        return []
    return [role for role in Role if has(user, ALL_SITES) or ALL_SITES not in PERMISSIONS[role]]


def may_change_account(user, account: User) -> bool:
    """Whether ``user`` may change ``account``'s role, sites, password or activity.

    Without ``ALL_SITES``, only an account wholly within the user's sites and holding a
    role the user may give (a nurse of two hospitals is changed by the registry
    administrator, not by one hospital's); superusers and staff only with ``ALL_SITES``.
    """
    if not has(user, MANAGE_USERS):
        return False
    if has(user, ALL_SITES):
        return True
    if account.is_superuser or account.is_staff or account.role not in roles_grantable_by(user):
        return False
    theirs = set(account.sites.values_list("pk", flat=True))
    return bool(theirs) and theirs <= set(site_ids_for(user))


def export_logs_for(user) -> QuerySet[ExportLog]:
    """Export-log entries of exports that could contain patients of the user's sites."""
    if not has(user, AUDIT):
        return ExportLog.objects.none()
    if has(user, ALL_SITES):
        return ExportLog.objects.all()
    covered = ExportLog.sites.through.objects.filter(site_id__in=site_ids_for(user))
    return ExportLog.objects.filter(pk__in=covered.values("exportlog_id"))


# --- data freezes -------------------------------------------------------------------------


def freezes_for(user) -> QuerySet[DataFreeze]:
    """Freezes ``user`` may read: with ``FREEZE``, every one with ``ALL_SITES``, else
    those whose rows all come from the user's sites (a freeze of no patient: of its
    site filter's site, else anyone's with ``FREEZE``)."""
    if not has(user, FREEZE):
        return DataFreeze.objects.none()
    return _freezes_of_sites(user)


def _freezes_of_sites(user) -> QuerySet[DataFreeze]:
    """Freezes whose rows all come from the user's sites, whatever the user may do."""
    if not user.is_authenticated:
        return DataFreeze.objects.none()
    if has(user, ALL_SITES):
        return DataFreeze.objects.all()
    mine = set(sites_for(user).values_list("code", flat=True))
    readable = []
    for pk, codes, filters in DataFreeze.objects.values_list("pk", "site_codes", "filters"):
        sites = set(codes) or ({filters["site"]} if filters.get("site") else set())
        if sites <= mine:
            readable.append(pk)
    return DataFreeze.objects.filter(pk__in=readable)


def get_freeze(user, name: str) -> DataFreeze:
    """The freeze named ``name`` if ``user`` may read it: 403 without ``FREEZE``, 404 for
    a freeze that does not exist or holds rows of another's site."""
    freeze = get_object_or_404(_freezes_of_sites(user), name=name)
    require(has(user, FREEZE))
    return freeze
