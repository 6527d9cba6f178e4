import pytest

from greenloop.registry import Registry, RegistryError
from greenloop.tasks import task_families


def test_decorator_and_lookup():
    reg: Registry = Registry("widget")

    @reg.register("round")
    class Round:
        pass

    assert reg.get("round") is Round
    assert "round" in reg and reg.names() == ["round"]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(RegistryError, match="Did you mean 'humaneval'"):
        task_families.get("humaneal")


def test_lazy_target_loads_on_first_use():
    reg: Registry = Registry("codec")
    reg.register_lazy("json-dumps", "json:dumps")
    import json

    assert reg.get("json-dumps") is json.dumps


def test_broken_plugin_fails_loudly_naming_itself():
    reg: Registry = Registry("thing")
    reg.register_lazy("broken", "greenloop.no_such_module:Thing")
    with pytest.raises(RegistryError, match="'broken' could not be loaded"):
        reg.get("broken")


def test_duplicate_registration_is_an_error():
    reg: Registry = Registry("thing")
    reg.register("a", object())
    with pytest.raises(RegistryError):
        reg.register("a", object())
