"""Test profiles (tests/support/profile.py): the fast default deselects the tests marked `deep`."""

from __future__ import annotations

import pytest

from tests.support.profile import DEEP, PROFILE


def pytest_report_header(config: pytest.Config) -> str:
    if DEEP:
        return "TEST_PROFILE=deep: every test, full property-test examples"
    return f"TEST_PROFILE={PROFILE}: tests marked deep are deselected (make test-deep, make test run them)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DEEP:
        return
    deep = [item for item in items if item.get_closest_marker("deep") is not None]
    if deep:
        config.hook.pytest_deselected(items=deep)
        items[:] = [item for item in items if item.get_closest_marker("deep") is None]
