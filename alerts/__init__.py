"""Alerts: the vectorised alarm engine, alarm lifecycle, journal and notifications."""
