"""The typed environment helpers of config/settings.py fail loudly on a bad value."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_count_or


def test_an_unset_or_empty_count_is_its_default(monkeypatch):
    monkeypatch.delenv("REGISTRY_TEST_NUMBER", raising=False)
    assert env_count_or("REGISTRY_TEST_NUMBER", 0, server=None) == 0
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "")
    assert env_count_or("REGISTRY_TEST_NUMBER", 3, server=None) == 3


def test_a_count_is_read_and_a_named_word_gives_its_value(monkeypatch):
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "2")
    assert env_count_or("REGISTRY_TEST_NUMBER", 0, server=None) == 2
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "server")
    assert env_count_or("REGISTRY_TEST_NUMBER", 0, server=None) is None


@pytest.mark.parametrize("raw", ["two", "-1", "servers"])
def test_anything_else_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", raw)
    with pytest.raises(ImproperlyConfigured, match="REGISTRY_TEST_NUMBER must be"):
        env_count_or("REGISTRY_TEST_NUMBER", 0, server=None)
