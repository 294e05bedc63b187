"""ingest/paho_log.py: paho's "not connected" line after our own disconnect() is not an ERROR; every
other paho line, the same words after a lost connection included, stays as paho logged it."""

from __future__ import annotations

import logging

import pytest

from ingest.paho_log import paho_logger

AFTER_STOP = "Client is not connected. Socket: None). Last known Connection State: MQTT_CS_DISCONNECTED"
LOST = "Client is not connected. Socket: None). Last known Connection State: MQTT_CS_CONNECTION_LOST"


def test_the_line_after_a_deliberate_disconnect_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    log = paho_logger("test.paho.stop")
    with caplog.at_level(logging.INFO, logger="test.paho.stop"):
        log.error(AFTER_STOP)
        log.error(AFTER_STOP.replace("DISCONNECTED", "DISCONNECTING"))
    assert caplog.records == []


def test_it_is_kept_at_debug_when_debug_is_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    log = paho_logger("test.paho.debug")
    with caplog.at_level(logging.DEBUG, logger="test.paho.debug"):
        log.error(AFTER_STOP)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("DEBUG", AFTER_STOP)]


def test_a_lost_connection_and_other_errors_stay_errors(caplog: pytest.LogCaptureFixture) -> None:
    log = paho_logger("test.paho.lost")
    with caplog.at_level(logging.INFO, logger="test.paho.lost"):
        log.error(LOST)
        log.error("failed to receive on socket: [Errno 104] Connection reset by peer")
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]


def test_the_filter_is_installed_once_per_logger() -> None:
    assert len(paho_logger("test.paho.once").filters) == len(paho_logger("test.paho.once").filters) == 1
