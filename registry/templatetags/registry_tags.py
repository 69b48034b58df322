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


@register.filter
def lookup(mapping, key):
    """``mapping[key]``, or None: a template cannot index by a variable."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def column_label(name: str) -> str:
    """An interchange column's label (``premorbid_mrs`` reads "Pre-stroke mRS")."""
    from registry.display import column_label as label

    return label(name)


@register.filter
def column_labels(names) -> str:
    return ", ".join(column_label(name) for name in names)
