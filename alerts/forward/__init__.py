"""Upward forwarding (issue 13 item 7): alarm lifecycle records and 1-minute sensor summaries pushed to
a higher platform over signed HTTP and MQTT, from a durable outbox (docs/design.md decision 20)."""
