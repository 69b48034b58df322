"""Template tags of the study workflow: the home panels and the queries on a field."""

from __future__ import annotations

from django import template

from registry import access
from registry.workflow import services as workflow

register = template.Library()


@register.inclusion_tag("registry/workflow/home_panels.html", takes_context=True)
def workflow_home_panels(context):
    """Calls due and open queries for the signed-in user: ``{% workflow_home_panels %}``.

    Shown on the plain home page only: a search or a later page of the patient
    list does not repeat them (two queries, whatever the number of patients).
    """
    request = context["request"]
    if request.GET:
        return {"workflow_panels": False}
    return workflow.home_panels_context(request.user)


@register.inclusion_tag("registry/workflow/_field_queries.html", takes_context=True)
def field_queries(context, patient, field_name):
    """Unclosed queries on one field, and a link to raise one (monitor, investigator).

    ``{% field_queries patient "door_time" %}``; the patient's queries are read once
    per page and kept on the patient object.
    """
    cached = getattr(patient, "_open_queries_by_field", None)
    if cached is None:
        cached = workflow.open_queries_by_field(patient)
        patient._open_queries_by_field = cached
    return {
        "patient": patient,
        "field_name": field_name,
        "queries": cached.get(field_name, []),
        "can_raise": access.has(context["request"].user, access.RAISE_QUERY),
    }
