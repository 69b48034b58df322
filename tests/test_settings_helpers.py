"""The typed environment helpers of config/settings.py fail loudly on a bad value."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_optional_int


def test_an_unset_or_empty_optional_integer_is_none(monkeypatch):
    monkeypatch.delenv("REGISTRY_TEST_NUMBER", raising=False)
    assert env_optional_int("REGISTRY_TEST_NUMBER") is None
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "")
    assert env_optional_int("REGISTRY_TEST_NUMBER") is None


def test_an_optional_integer_is_read_and_zero_is_kept(monkeypatch):
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "0")
    assert env_optional_int("REGISTRY_TEST_NUMBER") == 0


def test_a_non_integer_names_the_variable(monkeypatch):
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "two")
    with pytest.raises(ImproperlyConfigured, match="REGISTRY_TEST_NUMBER must be an integer"):
        env_optional_int("REGISTRY_TEST_NUMBER")
