import pytest
from django.utils import translation

from registry.choices import Role

from .factories import SiteFactory, UserFactory


@pytest.fixture
def site_a(db):
    return SiteFactory(code="A", name="Site A")


@pytest.fixture
def site_b(db):
    return SiteFactory(code="B", name="Site B")


@pytest.fixture
def nurse(site_a):
    return UserFactory(username="nurse_a", role=Role.DATA_ENTRY, sites=[site_a])


@pytest.fixture
def nurse_b(site_b):
    return UserFactory(username="nurse_b", role=Role.DATA_ENTRY, sites=[site_b])


@pytest.fixture
def investigator(site_a):
    return UserFactory(username="investigator_a", role=Role.INVESTIGATOR, sites=[site_a])


@pytest.fixture
def monitor(site_a):
    return UserFactory(username="monitor_a", role=Role.MONITOR, sites=[site_a])


@pytest.fixture
def admin_user(db):
    return UserFactory(username="registry_admin", role=Role.ADMIN)


@pytest.fixture
def demo_cohort(db):
    """The demo's 85 patients, imported as the demo loads them (its site created)."""
    from registry import demo
    from registry.interchange.importer import registry_import

    SiteFactory(code=demo.SITE_CODE, name=demo.SITE_NAME)
    result = registry_import(rows=demo.cohort_rows(), filename="demo")
    assert result.ok, result.problems[:3]


@pytest.fixture(autouse=True)
def each_test_starts_in_the_registrys_language():
    """A request activates its user's language on the thread, as on a server, where the
    next request activates its own; a test that calls code directly must not inherit it."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def each_test_starts_with_nothing_remembered():
    """The quality page remembers its numbers by the newest history rows' ids; a test's
    rolled-back rows give their ids again (SQLite), which a registry never does."""
    from django.core.cache import cache

    cache.clear()
