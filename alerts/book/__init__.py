"""The alarm book and its journal (behind a port, with the SQLite adapter named as such), the alarm
events' listener, the event outbox and its MQTT transport."""
