"""The audit trail's history records: simple-history's, with the author kept.

simple-history's ``history_user`` is a foreign key that becomes NULL when the user is
deleted, so deleting an account erased "who" from every row that account wrote. Here
it is ``PROTECT``: an account that wrote anything cannot be deleted (by the ORM, and
the database's own foreign key refuses it too), it is deactivated instead
(``User.has_written``, ``registry.accounts.services``).
"""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords

__all__ = ["AuditedHistory"]


class AuditedHistory(HistoricalRecords):
    """``HistoricalRecords`` whose ``history_user`` is protected from deletion.

    For a many-to-many field tracked with ``m2m_fields``, a change made from the other
    side (``site.users.add(user)``) is recorded on each user concerned, as one made
    from the user's side is; simple-history would try to record it on the site.
    """

    def _get_history_user_fields(self):
        fields = super()._get_history_user_fields()
        user = fields.get("history_user")
        if isinstance(user, models.ForeignKey):
            user.remote_field.on_delete = models.PROTECT
        return fields

    def m2m_changed(self, instance, action, attr, pk_set, reverse, **kwargs):
        if not reverse:
            return super().m2m_changed(instance, action, attr, pk_set, reverse, **kwargs)
        model = kwargs["model"]  # the tracked model (the user), instance is the other side
        if action == "pre_clear":
            members = model.objects.filter(**{attr: instance})
            instance.__dict__["_history_cleared"] = list(members)
            return None
        if action == "post_clear":
            changed = instance.__dict__.pop("_history_cleared", [])
        elif action in ("post_add", "post_remove"):
            changed = model.objects.filter(pk__in=pk_set or ())
        else:
            return None
        for member in changed:
            super().m2m_changed(member, action, attr, pk_set, False)
        return None
