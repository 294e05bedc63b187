"""paho-mqtt's log as hazmon keeps it: an error is an error, not the noise of a stop we asked for.

paho 2.x's network thread can make one more pass after `disconnect()` closed the socket, and logs
"Client is not connected ... Last known Connection State: MQTT_CS_DISCONNECTED" at ERROR. That state
is reached only through `disconnect()` (a lost connection is MQTT_CS_CONNECTION_LOST), so the line
says nothing wrong: it is logged at DEBUG instead, and every other paho line is left as it is.
"""

from __future__ import annotations

import logging

NOT_CONNECTED = "Client is not connected"
DELIBERATE_STATES = ("MQTT_CS_DISCONNECTING", "MQTT_CS_DISCONNECTED")


class DeliberateDisconnectFilter(logging.Filter):
    """Turns paho's "not connected" ERROR after our own disconnect() into a DEBUG line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            message = record.getMessage()
            if message.startswith(NOT_CONNECTED) and message.endswith(DELIBERATE_STATES):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)  # shown only when asked
        return True


def paho_logger(name: str) -> logging.Logger:
    """The logger to give a paho client (`client.enable_logger`), with the filter installed once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, DeliberateDisconnectFilter) for f in logger.filters):
        logger.addFilter(DeliberateDisconnectFilter())
    return logger
