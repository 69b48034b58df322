"""Display of the study tables: paper-style numbers and drill-down links."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.html import format_html

from analytics import formatting
from analytics.notes import local_decimals, translate_note

register = template.Library()


@register.filter
def estimate(value, digits=1):
    return local_decimals(formatting.format_estimate(value, digits=int(digits)))


@register.filter
def ci(value, digits=1):
    return local_decimals(formatting.format_ci(value, digits=int(digits)))


@register.filter
def pvalue(value):
    return local_decimals(formatting.format_p(value))


@register.filter
def percent(value, decimals=1):
    """A percentage already multiplied by 100 (unrounded) -> "18.8%"."""
    if value is None:
        return formatting.NOT_ESTIMABLE
    return local_decimals(formatting.format_decimal(value, int(decimals))) + "%"


@register.filter
def proportion_pct(value):
    """A proportion estimate in [0, 1] -> "98.5%"."""
    if value is None:
        return formatting.NOT_ESTIMABLE
    return local_decimals(formatting.format_decimal(value * 100, 1)) + "%"


@register.filter
def ci_pct(value):
    if value is None:
        return formatting.NOT_ESTIMABLE
    low, high = (formatting.format_decimal(limit * 100, 1) for limit in value)
    return local_decimals(f"{low}{formatting.EN_DASH}{high}")


@register.filter
def share_of(k, n):
    """``k (x.x%)`` of ``n``."""
    return local_decimals(formatting.format_n_percent(k, n))


@register.filter
def note(value):
    """A note of the statistics, or a number needed to treat, in the page's language."""
    return translate_note(value)


@register.filter
def local(value):
    """Numbers already written as text ("62.8 ± 12.4") with the language's decimal mark."""
    return local_decimals(str(value)) if value is not None else ""


@register.filter
def item(mapping, key):
    try:
        return mapping[key]
    except (KeyError, IndexError, TypeError):
        return None


@register.simple_tag(takes_context=True)
def drill(context, cell, count, denominator=None):
    """The count as a link to the patients behind it (same filters)."""
    query = {"cell": cell, **context.get("drill_params", {})}
    url = f"{reverse('analytics:patients')}?{urlencode(query)}"
    text = str(count) if denominator is None else formatting.format_n_percent(count, denominator)
    return format_html('<a href="{}" class="drill">{}</a>', url, local_decimals(text))


@register.simple_tag(takes_context=True)
def with_filters(context, url_name, *args):
    """URL of ``url_name`` carrying the report's filters."""
    query = urlencode(context.get("filter_params", {}), doseq=True)
    url = reverse(url_name, args=args)
    return f"{url}?{query}" if query else url
