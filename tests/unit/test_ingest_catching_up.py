"""Ingest says when it drains a backlog (healthz `catching_up`), from the age of what it takes."""

from __future__ import annotations

from ingest.stats import CATCH_UP_HOLD_S, CATCH_UP_LAG_MS, CATCH_UP_MIN_READINGS, IngestStats


def test_a_big_take_of_only_old_readings_means_catching_up_for_a_few_seconds():
    stats = IngestStats()
    stats.note_take(CATCH_UP_MIN_READINGS, CATCH_UP_LAG_MS + 1, mono_now=100.0)
    assert stats.catching_up(mono_now=100.0)
    assert stats.catching_up(mono_now=100.0 + CATCH_UP_HOLD_S - 0.1)
    assert not stats.catching_up(mono_now=100.0 + CATCH_UP_HOLD_S + 0.1)
    assert stats.snapshot()["newest_age_ms"] == CATCH_UP_LAG_MS + 1


def test_live_readings_or_one_gateways_small_store_and_forward_are_not_a_backlog():
    stats = IngestStats()
    stats.note_take(50_000, 2_000, mono_now=10.0)  # a heavy but live take
    stats.note_take(CATCH_UP_MIN_READINGS - 1, 3_600_000, mono_now=10.0)  # a gateway's stored hour
    assert not stats.catching_up(mono_now=10.0)
