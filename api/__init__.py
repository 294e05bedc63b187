"""HTTP API and control-room console."""
