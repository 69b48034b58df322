"""ANALYTICS_DATABASE_URL: the analytics read from their own alias (a replica) when set.

The alias is added for one test as a mirror of the test database (the same
database through a second connection, as a streaming replica would be), so the
test can tell by each connection's captured queries where the analytics read.
Data is committed (``transaction=True``) because a second connection does not
see the test's open transaction.
"""

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext

from config.db_router import (
    ANALYTICS_ALIAS,
    AnalyticsReplicaRouter,
    analytics_database,
    analytics_db_alias,
)

from .factories import SiteFactory, full_patient

ROUTER = "config.db_router.AnalyticsReplicaRouter"


@pytest.fixture(scope="class")
def analytics_mirror(django_db_setup, django_db_blocker):
    """The ``analytics`` alias, pointing at the test database, for one class of tests.

    Class-scoped so that it exists before the test's database access is set up
    (the alias must be known to be listed in ``databases``).
    """
    if ANALYTICS_ALIAS in connections.settings:  # configured for the whole run: a mirror
        yield ANALYTICS_ALIAS
        return
    default = connections[DEFAULT_DB_ALIAS].settings_dict
    connections.settings[ANALYTICS_ALIAS] = {
        **default,
        "TEST": {**default["TEST"], "MIRROR": DEFAULT_DB_ALIAS},
    }
    try:
        yield ANALYTICS_ALIAS
    finally:
        with django_db_blocker.unblock():
            connections[ANALYTICS_ALIAS].close()
        del connections[ANALYTICS_ALIAS]
        del connections.settings[ANALYTICS_ALIAS]


def test_without_the_setting_the_analytics_read_the_default_database():
    assert ANALYTICS_ALIAS not in connections.settings
    assert analytics_db_alias() == DEFAULT_DB_ALIAS


def test_an_unset_url_adds_no_alias():
    assert analytics_database(None) is None
    assert analytics_database("") is None


def test_the_url_becomes_a_test_mirror_of_the_default_database():
    config = analytics_database("postgres://reader@replica.example:5432/registry")
    assert config["HOST"] == "replica.example"
    assert config["NAME"] == "registry"
    assert config["TEST"] == {"MIRROR": DEFAULT_DB_ALIAS}


def test_the_replica_sessions_are_read_only_and_without_jit_on_postgresql():
    config = analytics_database("postgres://reader@replica.example:5432/registry")
    assert "-c default_transaction_read_only=on" in config["OPTIONS"]["options"]
    assert "-c jit=off" in config["OPTIONS"]["options"]


def test_the_settings_install_the_router(settings):
    assert ROUTER in settings.DATABASE_ROUTERS


def test_the_router_never_writes_or_migrates_on_the_replica():
    router = AnalyticsReplicaRouter()
    assert router.db_for_write(object) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(ANALYTICS_ALIAS, "registry") is False
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "registry") is None


@pytest.mark.usefixtures("analytics_mirror")
class TestWithTheAnalyticsAlias:
    def test_the_analytics_db_alias_names_it(self):
        assert analytics_db_alias() == ANALYTICS_ALIAS

    @pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, ANALYTICS_ALIAS])
    def test_the_study_counts_and_columns_are_read_from_it(self):
        from analytics import datasets

        site = SiteFactory(code="A")
        for _ in range(3):
            full_patient(site=site)
        with (
            CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_default,
            CaptureQueriesContext(connections[ANALYTICS_ALIAS]) as on_analytics,
        ):
            queryset = datasets.patients()
            counts = datasets.count_tables(queryset)
            columns = datasets.fetch_columns(queryset)
        assert counts["baseline:patients"] == 3
        assert len(columns.continuous["age"]) == 3
        assert len(on_analytics) >= 2
        assert len(on_default) == 0, [q["sql"] for q in on_default.captured_queries]

    @pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, ANALYTICS_ALIAS])
    def test_an_object_read_from_it_is_saved_on_the_default_database(self, settings):
        settings.DATABASE_ROUTERS = [ROUTER]
        site = SiteFactory(code="A")
        replica_copy = type(site).objects.using(ANALYTICS_ALIAS).get(pk=site.pk)
        replica_copy.name = "Renamed"
        with CaptureQueriesContext(connections[ANALYTICS_ALIAS]) as on_analytics:
            replica_copy.save()
        assert len(on_analytics) == 0
        site.refresh_from_db()
        assert site.name == "Renamed"


@pytest.mark.django_db(transaction=True)
def test_without_the_alias_the_study_counts_are_read_from_the_default_database():
    from analytics import datasets

    full_patient(site=SiteFactory(code="A"))
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_default:
        counts = datasets.count_tables(datasets.patients())
    assert counts["baseline:patients"] == 1
    # Out of a transaction the read also exports its snapshot (tests/test_split_read.py):
    # BEGIN, SET TRANSACTION, the export, the one read, COMMIT.
    reads = [q["sql"] for q in on_default.captured_queries if "COPY (" in q["sql"]]
    assert len(reads) == (1 if connections[DEFAULT_DB_ALIAS].vendor == "postgresql" else 0)
    assert len(on_default) == (5 if reads else 1)
