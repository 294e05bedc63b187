"""Simulated sensor fleets that publish over MQTT like a real field."""
