"""The analytics' database alias: a read replica when ``ANALYTICS_DATABASE_URL`` is set.

The study tables scan every patient; on a busy multi-centre registry they are
sent to a PostgreSQL streaming replica so that they never compete with the
nurses' writes on the primary. ``settings.py`` adds the ``analytics`` alias only
when ``ANALYTICS_DATABASE_URL`` is set; ``analytics/datasets.py`` (the only
reader of the registry for the analytics) starts its querysets with
``.using(analytics_db_alias())``, which is ``"default"`` when no replica is
configured, so a single-server installation changes nothing.

``AnalyticsReplicaRouter`` keeps the replica read-only from Django's side:
writes always go to ``default`` (also for an object that was read from the
replica) and migrations never run on the replica (it replays the primary's).
"""

from __future__ import annotations

# No django.db import at module level: settings.py imports this module.
DEFAULT_DB_ALIAS = "default"
ANALYTICS_ALIAS = "analytics"
REPLICA_ALIASES = frozenset({ANALYTICS_ALIAS})


def analytics_db_alias() -> str:
    """The database alias the analytics read from: ``analytics`` if configured."""
    from django.db import connections

    return ANALYTICS_ALIAS if ANALYTICS_ALIAS in connections.settings else DEFAULT_DB_ALIAS


def analytics_database(url: str | None, *, conn_max_age: int = 0) -> dict | None:
    """The ``DATABASES["analytics"]`` entry for ``ANALYTICS_DATABASE_URL`` (None if unset).

    On PostgreSQL the sessions are read-only (``default_transaction_read_only``),
    so a URL that points at the primary by mistake still cannot be written through,
    and JIT compilation is off: compiling the study tables' wide read can cost more
    than running it, and saves nothing on the largest registries.
    In tests the alias is a mirror of ``default`` (no second test database is
    created; the analytics read the test database through their own connection).
    """
    if not url:
        return None
    import dj_database_url

    config = dj_database_url.parse(url, conn_max_age=conn_max_age)
    if config["ENGINE"] == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        extra = options.get("options", "")
        options["options"] = f"{extra} -c default_transaction_read_only=on -c jit=off".strip()
    config["TEST"] = {"MIRROR": DEFAULT_DB_ALIAS}
    return config


class AnalyticsReplicaRouter:
    """Writes and migrations on ``default`` only; reads wherever ``.using()`` says."""

    def db_for_read(self, model, **hints):
        return None  # default, unless the queryset names the analytics alias

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the same rows as the primary.
        databases = {DEFAULT_DB_ALIAS, *REPLICA_ALIASES}
        if obj1._state.db in databases and obj2._state.db in databases:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db in REPLICA_ALIASES:
            return False
        return None
