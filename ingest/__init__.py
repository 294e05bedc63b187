"""Ingest: MQTT collection, payload decoding into column batches, and the InfluxDB adapter."""
