"""The typed environment helpers of config/settings.py fail loudly on a bad value."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_count_or, env_int_at_least


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


def test_a_number_below_its_minimum_names_the_variable_and_the_rule(monkeypatch):
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "0")
    with pytest.raises(ImproperlyConfigured, match=r"REGISTRY_TEST_NUMBER must be .* >= 1"):
        env_int_at_least("REGISTRY_TEST_NUMBER", 2, minimum=1)
    monkeypatch.setenv("REGISTRY_TEST_NUMBER", "3")
    assert env_int_at_least("REGISTRY_TEST_NUMBER", 2, minimum=1) == 3
    monkeypatch.delenv("REGISTRY_TEST_NUMBER")
    assert env_int_at_least("REGISTRY_TEST_NUMBER", 2, minimum=1) == 2
