"""Small display helpers for the registry's templates."""

import datetime as dt

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def duration(value: dt.timedelta | None) -> str:
    """A time interval as hours and minutes ("4 h 05 min", "50 min")."""
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    if hours:
        return _("%(sign)s%(h)d h %(m)02d min") % {"sign": sign, "h": hours, "m": rest}
    return _("%(sign)s%(m)d min") % {"sign": sign, "m": rest}


@register.filter
def is_datetime(value) -> bool:
    return isinstance(value, dt.datetime)
