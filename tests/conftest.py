"""Test profiles (tests/support/profile.py): the fast default deselects the tests marked `deep`."""

from __future__ import annotations

import pytest

from tests.support.profile import DEEP, PROFILE


def pytest_report_header(config: pytest.Config) -> str:
    if DEEP:
        return "TEST_PROFILE=deep: every test, full property-test examples"
    return f"TEST_PROFILE={PROFILE}: tests marked deep are deselected (make test-deep, make test run them)"


# The longest test files, longest first (seconds measured with --durations on a loaded 2-core
# machine). `make test` hands whole files to its workers (--dist loadfile) in collection order
# (--no-loadscope-reorder: xdist would otherwise order them by their number of tests, and start the
# one-test outage files last), so starting the longest first packs them best: the suite ends when
# its last file does.
SLOWEST_FILES = (
    "tests/integration/test_sms_service.py",  # ~190 s
    "tests/integration/test_forward_outage.py",  # ~173 s: a 2 min outage
    "tests/integration/test_no_loss.py",  # ~150 s
    "tests/scenarios/test_scenarios.py",  # ~150 s: the deep profile replays the whole library (CPU)
    "tests/integration/test_sms_outage.py",  # ~145 s: a 2 min outage
    "tests/browser/test_console.py",  # ~110 s
    "tests/integration/test_demo_story.py",  # ~72 s
    "tests/integration/test_reports.py",  # ~72 s
    "tests/integration/test_api_fuzz.py",  # ~70 s
    "tests/unit/test_tune_cli.py",  # ~55 s
    "tests/integration/test_stream.py",  # ~51 s
    "tests/integration/test_login_flood.py",  # ~39 s
    "tests/integration/test_fail_safe.py",  # ~34 s
    "tests/integration/test_ingest_guards.py",  # ~34 s
    "tests/integration/test_alarm_crash.py",  # ~28 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: order kept
    if DEEP:
        return
    deep = [item for item in items if item.get_closest_marker("deep") is not None]
    if deep:
        config.hook.pytest_deselected(items=deep)
        items[:] = [item for item in items if item.get_closest_marker("deep") is None]
